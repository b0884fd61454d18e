"""Resume on retry without Airflow: a :class:`ResumablePull` over a dict task-state store, a real target folder,
and pages driven through ``iter_pages`` with a fake Order Status. A first try fails at page 23 of 40 (2 orders
a page, a chunk every 2 pages); a second :class:`ResumablePull` of the same task instance is the retry.
``tests/integration/test_resume.py`` runs the same story through real Airflow and the emulator."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_schneider.client.pagination import PageCounters, iter_pages
from airflow_provider_schneider.exceptions import SchneiderError
from airflow_provider_schneider.outputs.staging import ChunkOwner
from airflow_provider_schneider.outputs.storage import to_storage_path
from airflow_provider_schneider.pulls.checkpoint import CHECKPOINT_KEY, CLOCK_SKEW, seal_key
from airflow_provider_schneider.pulls.resume import ResumablePull
from tests.support.fakes import DictStore, FakeClock, LineLog

TASK = "abcdef012345"
OWNER = ChunkOwner("fp-orders-fr", TASK, 1)
KEY = seal_key("secret")
ORDERS, PER_PAGE, FAIL_AT = 80, 2, 23  # 40 pages; chunks of 2 pages; pages 1-22 staged when 23 fails
NOW = 1_800_000_000.0


class ApiDown(Exception):
    pass


class PageError(Exception):
    def __init__(self, message: str, page: int):
        super().__init__(f"{message} (page {page})")


class Orders:
    """Order Status as a function ``page -> body`` (the orders can be changed between tries), failing once at
    ``fail_at``; the pages asked are kept in ``calls``."""

    def __init__(self, count: int = ORDERS, *, fail_at: int | None = None):
        self.orders = [{"orderNumber": f"FR{i:08d}", "status": "open"} for i in range(count)]
        self.fail_at = fail_at
        self.calls: list[int] = []

    def __call__(self, number: int) -> dict[str, Any]:
        self.calls.append(number)
        if number == self.fail_at:
            raise ApiDown(f"HTTP 500 on page {number}")
        pages = math.ceil(len(self.orders) / PER_PAGE)
        shown = min(number, pages)
        return {
            "orderList": self.orders[(shown - 1) * PER_PAGE : shown * PER_PAGE],
            "pagination": {"totalNumberOfRecords": len(self.orders), "pageNumber": shown, "totalNumberOfPages": pages},
        }


class Tries:
    """The task instance's tries: one store, one target, one owner unless a try says otherwise."""

    def __init__(self, tmp_path: Path):
        self.folder = tmp_path
        self.target = to_storage_path(f"file://{tmp_path}/t.jsonl")
        self.store = DictStore()
        self.log = LineLog()

    def pull(self, *, owner: ChunkOwner = OWNER, key: bytes = KEY, max_age: float = 3600, wall: float = NOW, **kw):
        kw.setdefault("checkpoint_every", 0)  # the mechanics at every 5 %, however fast the fake pages come
        return ResumablePull(
            self.store, self.target, owner, key, self.log, max_age=max_age, wall_clock=lambda: wall, **kw
        )

    def run(self, pull: ResumablePull, api: Orders) -> tuple[list[Any], bool]:
        """The records a try yields, and whether it failed."""
        got: list[Any] = []
        pages = iter_pages(api, counters=PageCounters(PageError, "orderList"), held=pull.held)
        try:
            for batch in pull.batches(pages):
                got.extend(batch.records)
        except ApiDown:
            return got, True
        return got, False

    def failed_first_try(self, **kw: Any) -> ResumablePull:
        pull = self.pull(**kw)
        got, failed = self.run(pull, Orders(fail_at=FAIL_AT))
        assert failed and len(got) == (FAIL_AT - 1) * PER_PAGE
        pull.close(keep=True)
        return pull

    def chunks(self) -> list[str]:
        """Chunk files (a try's open chunk too, until the try closes)."""
        return sorted(p.name for p in self.folder.iterdir() if ".resume-" in p.name and p.name.endswith(".jsonl"))

    def hidden(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if p.name.startswith("."))

    def warnings(self) -> str:
        return "\n".join(self.log.lines("warning"))


@pytest.fixture
def tries(tmp_path) -> Tries:
    return Tries(tmp_path)


def uninterrupted(api: Orders | None = None) -> list[Any]:
    return list((api or Orders()).orders)


# -- the first try stages, the retry adopts -----------------------------------------------------------------------


def test_a_failed_try_stages_chunks_and_saves_a_checkpoint_per_chunk(tries):
    pull = tries.failed_first_try()

    assert pull.checkpoints_saved == 11 and tries.store.writes == 11  # batched: not one per page
    assert len(tries.chunks()) == 11
    saved = tries.store.values[CHECKPOINT_KEY]
    assert [(c["first"], c["last"]) for c in saved["chunks"]] == [(k, k + 1) for k in range(1, 23, 2)]
    assert (saved["total_pages"], saved["total_records"]) == (40, 80)
    assert sum(c["records"] for c in saved["chunks"]) == 44
    assert {c["name"] for c in saved["chunks"]} == set(tries.chunks())
    assert "Resume: pages 1-22 staged in 11 chunks (11 checkpoints this try); a retry continues at page 23" in (
        tries.log.lines("info")
    )
    assert [name for name in tries.hidden() if name.endswith(".partial")] == []  # no open chunk left behind


@pytest.mark.parametrize(("seconds_per_page", "chunks"), [(0.0, [(1, 3), (4, 6), (7, 9)]), (0.3, [(1, 2), (3, 4)])])
def test_a_fast_pull_checkpoints_at_most_four_times_a_second_and_never_loses_more_than_7_5_percent(
    tries, seconds_per_page, chunks
):
    """40 pages, 5 % = 2 pages: a chunk waits for CHECKPOINT_EVERY (0.25 s) unless it holds 7.5 % (3 pages)."""
    clock = FakeClock(0.0)

    class Slow(Orders):
        def __call__(self, number: int) -> dict[str, Any]:
            clock.sleep(seconds_per_page)
            return super().__call__(number)

    pull = tries.pull(clock=clock.monotonic, checkpoint_every=0.25)
    tries.run(pull, Slow(fail_at=10 if seconds_per_page == 0 else 6))
    saved = tries.store.values[CHECKPOINT_KEY]
    assert [(c["first"], c["last"]) for c in saved["chunks"]] == chunks


def test_the_checkpoint_interval_comes_from_the_environment_when_it_parses(monkeypatch):
    from airflow_provider_schneider.pulls.resume import CHECKPOINT_EVERY, CHECKPOINT_EVERY_ENV
    from airflow_provider_schneider.pulls.tries import _seconds_from_environment

    for value, expected in (
        ("0", 0.0),
        ("2.5", 2.5),
        ("-1", CHECKPOINT_EVERY),
        ("nan", CHECKPOINT_EVERY),
        ("x", CHECKPOINT_EVERY),
    ):
        monkeypatch.setenv(CHECKPOINT_EVERY_ENV, value)
        assert _seconds_from_environment(CHECKPOINT_EVERY_ENV, CHECKPOINT_EVERY) == expected


def test_the_retry_adopts_the_staged_pages_when_the_data_did_not_move(tries):
    first = tries.failed_first_try()
    api = Orders()
    retry = tries.pull(wall=NOW + 60)

    got, failed = tries.run(retry, api)

    assert not failed and got == uninterrupted()
    assert api.calls == [1, 22, *range(23, 41)]  # page 1 (totals), the boundary again, then the rest
    assert retry.restart_reason is None
    assert len(retry.adopted) == 11 and retry.adopted[-1].last == 22
    assert retry.pages_fetched == 18
    assert retry.staged_since == first.started_at == NOW  # the adopted pages are as old as the first try
    assert (
        "Resume: pages 1-22 (44 records) are staged by an earlier try and pages 1 and 22 still hold the same "
        "records; fetching pages 23-40"
    ) in tries.log.lines("info")
    retry.close(keep=False)
    assert tries.hidden() == [] and CHECKPOINT_KEY not in tries.store.values


def test_a_resumed_pull_writes_the_same_bytes_as_an_uninterrupted_one(tries, tmp_path):
    from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter
    from airflow_provider_schneider.pulls.plan import PullPlan, PullStats
    from airflow_provider_schneider.pulls.runner import run_plan, write_pull
    from airflow_provider_schneider.pulls.tries import retry_follows  # noqa: F401 - the production rule exists

    class Source:
        max_concurrency = 1

        def __init__(self, api: Orders):
            self.api = api

        def pages(self, plan, held):
            return iter_pages(self.api, counters=PageCounters(PageError, "orderList"), held=held)

        def fetch(self, call):  # pragma: no cover - a paginated plan makes no calls
            raise AssertionError(call)

    plan = PullPlan("order_status", "/orders/FR", {}, "orderList", paginate=True, page_size=PER_PAGE)
    reference = tmp_path / "reference"
    with RecordWriter(OutputSpec(f"file://{reference}/t.jsonl.gz", compression="gzip")) as writer:
        for record in uninterrupted():
            writer.write(record)

    tries.failed_first_try()
    retry, stats = tries.pull(), PullStats(clock=FakeClock(0.0).monotonic)
    output = write_pull(
        lambda: run_plan(plan, stats, Source(Orders()), lambda c, b, s: [], log=LineLog(), resume=retry),
        RecordWriter(OutputSpec(f"file://{tries.folder}/t.jsonl.gz", compression="gzip")),
        retry,
        lambda exc: True,
    )

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert sha(tries.folder / "t.jsonl.gz") == sha(reference / "t.jsonl.gz")
    assert output["resumed"] == {"pages_staged": 22, "pages_fetched": 18}
    assert (stats.pages, stats.records, stats.total) == (40, 80, 40)  # staged pages counted as pages too
    assert tries.chunks() == [] and CHECKPOINT_KEY not in tries.store.values  # success removes both


def test_a_record_edited_in_place_on_a_middle_page_keeps_its_staged_version(tries):
    """What resume cannot see (docs/outputs.md): an edit that moves nothing, on a page that is neither page 1
    nor the boundary."""
    tries.failed_first_try()
    api = Orders()
    api.orders[10]["status"] = "shipped"  # page 6

    got, _ = tries.run(tries.pull(), api)

    assert got[10]["status"] == "open" and got[11:] == api.orders[11:]


def test_a_chunk_nobody_listed_is_removed_when_the_staged_pages_are_adopted(tries):
    tries.failed_first_try()
    stray = tries.folder / f".t.jsonl.resume-{TASK}-000023-000024-deadbeef.jsonl"
    stray.write_bytes(b"staged after the last checkpoint")
    listed = tries.chunks()
    listed.remove(stray.name)

    got, _ = tries.run(tries.pull(), Orders())

    assert got == uninterrupted()
    assert not stray.exists()
    assert set(listed) <= set(tries.chunks())  # the adopted ones stay until the pull ends


# -- reasons to restart from page 1 -------------------------------------------------------------------------------


def test_other_totals_restart_from_page_one_and_say_why(tries):
    tries.failed_first_try()
    old = tries.chunks()
    api = Orders(78)  # 39 pages
    retry = tries.pull()

    got, _ = tries.run(retry, api)

    assert got == uninterrupted(api)
    assert api.calls == list(range(1, 40))  # nothing re-read to compare: the totals said enough
    assert retry.restart_reason == "the totals changed from 40 pages / 80 records to 39 / 78"
    assert f"Resume: restarting from page 1 in this try: {retry.restart_reason}" in tries.warnings()
    assert retry.adopted == () and not set(old) & set(tries.chunks())  # every old chunk gone


def test_a_changed_first_page_restarts_from_page_one(tries):
    tries.failed_first_try()
    api = Orders()
    api.orders[1] = {"orderNumber": "FR99999999", "status": "open"}  # page 1 holds another order now
    retry = tries.pull()

    got, _ = tries.run(retry, api)

    assert got == uninterrupted(api)
    assert retry.restart_reason.startswith(
        "page 1 no longer holds the records the failed try staged for it (2 records then, 2 now, other content)"
    )
    assert api.calls == [1, 22, *range(2, 41)]  # the boundary is read before the comparison


def test_data_that_shifted_before_the_boundary_restarts_from_page_one(tries):
    tries.failed_first_try()
    api = Orders()
    del api.orders[2]  # page 2 loses an order ...
    api.orders.append({"orderNumber": "FR00000080", "status": "open"})  # ... and one arrives: same totals
    retry = tries.pull()

    got, _ = tries.run(retry, api)

    assert got == uninterrupted(api)  # the data as it is now: nothing lost, nothing repeated
    assert retry.restart_reason.startswith("page 22 no longer holds the records the failed try staged")
    assert api.calls == [1, 22, *range(2, 41)]


@pytest.mark.parametrize("alter", ["flip-a-byte", "append-a-byte"])
def test_an_altered_chunk_restarts_from_page_one(tries, alter):
    tries.failed_first_try()
    fourth = tries.folder / tries.chunks()[3]
    assert "-000007-000008-" in fourth.name
    blob = bytearray(fourth.read_bytes())
    if alter == "flip-a-byte":
        blob[len(blob) // 2] ^= 0xFF
    else:
        blob += b"\0"
    fourth.write_bytes(bytes(blob))
    api = Orders()
    retry = tries.pull()

    got, _ = tries.run(retry, api)

    assert got == uninterrupted()
    assert retry.restart_reason.startswith(fourth.name)
    if alter == "append-a-byte":  # the header still reads: the size and sha256 give it away
        assert retry.restart_reason == f"{fourth.name} is not what was staged ({len(blob)} bytes)"
    assert api.calls == list(range(1, 41))  # refused before any page was read again
    assert not fourth.exists()


def test_a_missing_chunk_restarts_from_page_one(tries):
    tries.failed_first_try()
    gone = tries.folder / tries.chunks()[0]
    gone.unlink()
    retry = tries.pull()

    got, _ = tries.run(retry, Orders())

    assert got == uninterrupted()
    assert retry.restart_reason == f"{gone.name} cannot be read (FileNotFoundError)"


@pytest.mark.parametrize(
    ("age", "adopted"),
    [(3600, True), (3601, False), (-CLOCK_SKEW, True), (-CLOCK_SKEW - 1, False)],
    ids=["at-max-age", "older", "ahead-within-skew", "from-the-future"],
)
def test_a_checkpoint_older_than_max_age_is_not_resumed(tries, age, adopted):
    tries.failed_first_try(wall=NOW)
    staged = tries.chunks()
    retry = tries.pull(max_age=3600, wall=NOW + age)
    if not adopted:  # refused as it is read: the chunks go at once
        assert retry.previous is None and tries.chunks() == []
        assert "older than resume_max_age (3600 s), or dated in the future" in tries.warnings()
    api = Orders()

    got, _ = tries.run(retry, api)

    assert got == uninterrupted()
    assert (len(retry.adopted) == len(staged)) is adopted
    assert api.calls[:2] == ([1, 22] if adopted else [1, 2])


@pytest.mark.parametrize(
    ("retry_owner", "retry_key", "why"),
    [
        (ChunkOwner(OWNER.fingerprint, TASK, 2), KEY, "it was made before the task was cleared"),
        (ChunkOwner("fp-orders-de", TASK, 1), KEY, "it was made for another query, page size or target"),
        (OWNER, seal_key("rotated"), "it does not carry this pull's seal"),
    ],
    ids=["cleared", "other-plan", "other-secret"],
)
def test_a_checkpoint_of_another_generation_plan_or_secret_is_not_resumed(tries, retry_owner, retry_key, why):
    tries.failed_first_try()
    retry = tries.pull(owner=retry_owner, key=retry_key)

    assert retry.previous is None
    assert f"Resume: not using the checkpoint of an earlier try ({why}" in tries.warnings()
    assert tries.chunks() == [] and CHECKPOINT_KEY not in tries.store.values
    api = Orders()
    assert tries.run(retry, api)[0] == uninterrupted() and api.calls == list(range(1, 41))


def test_a_checkpoint_naming_another_tasks_chunk_is_refused_and_only_our_chunks_go(tries):
    other_owner = ChunkOwner(OWNER.fingerprint, "0123456789ab", 1)
    neighbour = Tries(tries.folder)  # another task instance writing beside the same target
    neighbour.failed_first_try(owner=other_owner)
    theirs = neighbour.chunks()
    assert theirs and all("-0123456789ab-" in name for name in theirs)

    tries.failed_first_try()
    ours = [name for name in tries.chunks() if name not in theirs]
    checkpoint = tries.store.values[CHECKPOINT_KEY]
    checkpoint["chunks"][0]["name"] = theirs[0]  # edited through the task-state API

    retry = tries.pull()

    assert retry.previous is None
    assert "it is not a checkpoint of this task instance's pull" in tries.warnings()
    assert not any((tries.folder / name).exists() for name in ours)  # ours removed ...
    assert [name for name in tries.chunks() if name in theirs] == theirs  # ... theirs untouched


@pytest.mark.parametrize("name", ["../t.jsonl", f"sub/.t.jsonl.resume-{TASK}-x.jsonl.gz", "t.jsonl"])
def test_a_checkpoint_naming_anything_but_a_chunk_of_ours_is_refused(tries, name):
    tries.failed_first_try()
    (tries.folder / "t.jsonl").write_text("the previous output")
    tries.store.values[CHECKPOINT_KEY]["chunks"][0]["name"] = name

    assert tries.pull().previous is None
    assert (tries.folder / "t.jsonl").read_text() == "the previous output"
    assert tries.chunks() == []


def test_a_chunk_changed_after_its_check_fails_the_try_and_drops_the_checkpoint(tries):
    tries.failed_first_try()
    retry = tries.pull()
    batches = retry.batches(iter_pages(Orders(), counters=PageCounters(PageError, "orderList"), held=retry.held))
    first = next(batches)  # ``held`` checked every chunk: now one changes under us
    (tries.folder / retry.adopted[0].name).write_bytes(b"swapped")

    with pytest.raises(SchneiderError, match=r"staged chunk .* \(pages 1-2\) could not be read back"):
        list(first.records)
    assert CHECKPOINT_KEY not in tries.store.values and tries.chunks() == []


# -- staging rules and the end of a try -----------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds_a_page", "chunks"), [(61.0, [(1, 2), (3, 4), (5, 6)]), (1.0, [])])
def test_a_slow_pull_completes_a_chunk_after_a_minute_once_it_holds_one_percent(tries, seconds_a_page, chunks):
    """200 pages: a chunk every 10 pages (5 %), or every 2 (1 %) once the open one is a minute old."""
    clock = FakeClock(0.0)
    api = Orders(400, fail_at=8)

    def paced(number: int) -> dict:
        clock.now += seconds_a_page
        return api(number)

    pull = tries.pull(clock=clock.monotonic)
    got, failed = tries.run(pull, paced)

    assert failed and len(got) == 14
    assert [(c.first, c.last) for c in pull.checkpoint.chunks] == chunks
    assert pull.checkpoints_saved == len(chunks) == len(tries.chunks())


def test_a_try_that_ends_keeps_committed_chunks_and_discards_the_open_one(tries):
    pull = tries.pull()
    got, failed = tries.run(pull, Orders(fail_at=24))  # page 23 sits in an open chunk when 24 fails
    assert failed and any(name.endswith(".partial") for name in tries.hidden())

    pull.close(keep=True)

    assert len(tries.chunks()) == 11
    assert [name for name in tries.hidden() if name.endswith(".partial")] == []
    assert len(tries.store.values[CHECKPOINT_KEY]["chunks"]) == 11


def test_close_without_keep_removes_every_chunk_and_the_checkpoint(tries):
    pull = tries.pull()
    tries.run(pull, Orders(fail_at=24))

    pull.close(keep=False)

    assert tries.hidden() == []
    assert CHECKPOINT_KEY not in tries.store.values


def test_a_store_that_cannot_be_read_or_written_only_costs_the_resume(tries):
    class Broken(DictStore):
        def get(self, key, default=None):
            raise ConnectionError("api-server down")

        def set(self, key, value):
            raise ConnectionError("api-server down")

    tries.store = Broken()
    pull = tries.pull()
    got, failed = tries.run(pull, Orders())

    assert not failed and got == uninterrupted()
    assert pull.checkpoints_saved == 0
    warnings = tries.warnings()
    assert "Resume: could not read the checkpoint (ConnectionError); pulling from page 1" in warnings
    assert "Resume: could not save the checkpoint (ConnectionError)" in warnings


def test_the_checkpoint_in_the_store_is_plain_json_and_sealed(tries):
    tries.failed_first_try()
    saved = tries.store.values[CHECKPOINT_KEY]
    assert json.loads(json.dumps(saved)) == saved
    assert len(saved["seal"]) == 32 and all(len(c["seal"]) == 32 for c in saved["chunks"])
    assert saved["saved_at"] == NOW and saved["started_at"] == NOW
