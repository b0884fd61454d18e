"""Resume on retry: a paged pull whose first try fails at page k continues, on its retry, after the pages it
staged, and ends byte-identical to an uninterrupted pull. Real Airflow (``airflow dags test`` runs the task's
retry), the real task state store (Airflow >= 3.3), real files; the emulator counts the pages served."""

from __future__ import annotations

import hashlib
import re
import textwrap

import pytest

from airflow_provider_schneider.emulator import data
from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter
from airflow_provider_schneider.sinks import read_jsonl
from tests.support.dagrun import airflow_version
from tests.support.operators import local, partials

SEED = 42
ORDERS = "/v1/supply-chain/partner-order-status/orders/FR"

RESUME_DAG = '''
import datetime as dt
import glob
import os

import pendulum
from airflow.sdk import dag

from airflow_provider_schneider.operators import SchneiderOrderStatusOperator


def change_the_data(context):
    """Between the tries: the emulator serves another number of orders (SCHNEIDER_TEST_ORDERS_ON_RETRY), or
    one early order is deleted and one appended, totals unchanged (SCHNEIDER_TEST_MOVE_DATA), or one byte of a
    staged chunk changes (SCHNEIDER_TEST_ALTER_CHUNK), or the checkpoint is edited through the task state
    store to name a planted chunk of foreign records with the right size and sha256 (SCHNEIDER_TEST_PLANT)."""
    from airflow_provider_schneider.emulator.client import EmulatorClient

    orders = os.environ.get("SCHNEIDER_TEST_ORDERS_ON_RETRY")
    if orders:
        EmulatorClient(os.environ["SCHNEIDER_TEST_EMULATOR_URL"]).configure(orders_per_country=int(orders))
    moved = os.environ.get("SCHNEIDER_TEST_MOVE_DATA")
    if moved:
        EmulatorClient(os.environ["SCHNEIDER_TEST_EMULATOR_URL"]).configure(
            orders_per_country=1001, removed_orders=[moved]
        )
    if os.environ.get("SCHNEIDER_TEST_PLANT"):
        import hashlib, json

        from airflow._shared.state import TaskScope
        from airflow.state import get_state_backend
        from airflow.utils.session import create_session

        # What the task-state API writes (the failed try's own accessor no longer resolves: the retry has
        # a new task instance id by the time this callback runs).
        ti = context["ti"]
        scope = TaskScope(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index)
        with create_session() as session:
            checkpoint = json.loads(get_state_backend().get(scope, "schneider.pull.checkpoint", session=session))
        real = checkpoint["chunks"][0]
        folder = os.path.dirname(glob_one("{base}/**/" + real["name"]))
        with open(os.path.join(folder, real["name"]), "rb") as staged:
            first_line = staged.readline()
        header = first_line if b"schneider_chunk" in first_line else b""  # the chunk's own claim, copied
        planted_name = real["name"].replace(real["name"].rsplit("-", 1)[1], "beefbeef.jsonl")
        foreign = [{{"orderNumber": f"EVIL{{i}}"}} for i in range(real["records"])]
        blob = header + json.dumps(foreign).encode() + b"\\n"  # one page of foreign records
        open(os.path.join(folder, planted_name), "wb").write(blob)
        real.update(name=planted_name, bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest())
        with create_session() as session:
            get_state_backend().set(scope, "schneider.pull.checkpoint", json.dumps(checkpoint), session=session)
    if os.environ.get("SCHNEIDER_TEST_ALTER_CHUNK"):

        for chunk in sorted(glob.glob("{base}/**/.*.resume-*.jsonl", recursive=True))[3:4]:  # none below 3.3
            data = bytearray(open(chunk, "rb").read())
            data[len(data) // 2] ^= 0xFF
            open(chunk, "wb").write(bytes(data))


def glob_one(pattern):
    [found] = glob.glob(pattern, recursive=True)
    return found


@dag(schedule="@daily", start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False)
def schneider_resume():
    SchneiderOrderStatusOperator(
        task_id="pull",
        country="FR",
        page_size=25,
        max_concurrency=1,
        retry_max_attempts=1,  # the injected 500 fails the try at once
        retries=1,
        retry_delay=dt.timedelta(seconds=1),
        compression="gzip",
        output_base="file://{base}",
        on_retry_callback=change_the_data,
    )


schneider_resume()
'''


def pages_served(emulator) -> list[int]:
    """Pages answered (not a 401 replayed with a fresh token), in arrival order."""
    log = emulator.request_log()
    return [int(r["page"]) for r in log if r["channel"] == "api" and r["path"] == ORDERS and r["outcome"] != "401"]


def uninterrupted_sha256(tmp_path, records: list[dict]) -> str:
    """What an uninterrupted pull writes: the same records through the same writer."""
    with RecordWriter(OutputSpec(f"file://{tmp_path}/reference.jsonl", compression="gzip")) as writer:
        for record in records:
            writer.write(record)
    return hashlib.sha256(local(writer.manifest["uri"]).read_bytes()).hexdigest()


@pytest.fixture
def resume_dag(tmp_path, emulator, run_dag):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "schneider_resume.py").write_text(textwrap.dedent(RESUME_DAG.format(base=tmp_path / "out")))
    target = tmp_path / "out/schneider_resume/pull/20261105T000000__20261105T000000.jsonl.gz"

    def run(**env: str):
        env = {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "SCHNEIDER_TEST_EMULATOR_URL": emulator.url,
            "AIRFLOW_PROVIDER_SCHNEIDER_CHECKPOINT_EVERY": "0",  # chunks at every 5 % of a pull this fast
            **env,
        }
        return run_dag("schneider_resume", "2026-11-05", env=env)

    return run, target


def test_a_retry_continues_after_the_staged_pages_and_the_output_is_byte_identical(emulator, resume_dag, tmp_path):
    run, target = resume_dag
    emulator.configure(orders_per_country=1000)  # 40 pages of 25
    emulator.add_fault(target="api", kind="status", status=500, times=1, match_query={"page": "23"})

    result = run()

    assert result.succeeded, result.output[-4000:]
    served = pages_served(emulator)
    retry = [i for i, page in enumerate(served) if page == 1][1]  # each try starts with page 1
    first_try, second_try = served[:retry], served[retry:]
    assert first_try == list(range(1, 24))  # page 23 failed (500), the try with it
    expected = [data.order(SEED, "FR", i) for i in range(1000)]
    assert list(read_jsonl(f"file://{target}")) == expected
    assert hashlib.sha256(target.read_bytes()).hexdigest() == uninterrupted_sha256(tmp_path, expected)
    leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [] and partials(target.parent) == []  # chunks and temporaries gone after success

    if airflow_version() < (3, 3):  # no task state store: a clear no-op, the retry starts from page 1
        assert "Resume on retry needs Airflow >= 3.3" in result.output
        assert second_try == list(range(1, 41))
        return
    # Chunks are complete every 5 % of the 40 pages (2 pages): pages 1-22 were staged when page 23 failed.
    # Page 1 (the totals), page 22 again (the boundary: it still holds what was staged), then the rest.
    assert second_try == [1, 22, *range(23, 41)], second_try
    staged = re.search(r"Resume: pages 1-(\d+) staged in (\d+) chunks? \((\d+) checkpoints? this try\)", result.output)
    assert staged and staged.groups() == ("22", "11", "11"), result.output[-4000:]  # batched: not one per page
    assert (
        "Resume: pages 1-22 (550 records) are staged by an earlier try and pages 1 and 22 still hold the same "
        "records; fetching pages 23-40"
    ) in result.output


@pytest.mark.latest_only  # below 3.3 there is nothing to distrust: the first test checks the no-op there
@pytest.mark.parametrize(
    ("between_tries", "orders", "why"),
    [
        ({"SCHNEIDER_TEST_ORDERS_ON_RETRY": "990"}, 990, "the totals changed from 40 pages / 1000 records"),
        ({"SCHNEIDER_TEST_ALTER_CHUNK": "1"}, 1000, "-000007-"),  # the 4th chunk: pages 7-8, one byte flipped
    ],
    ids=["other-totals", "altered-chunk"],
)
def test_a_retry_that_cannot_trust_the_staged_pages_restarts_cleanly(
    emulator, resume_dag, tmp_path, between_tries, orders, why
):
    run, target = resume_dag
    emulator.configure(orders_per_country=1000)
    emulator.add_fault(target="api", kind="status", status=500, times=1, match_query={"page": "23"})

    result = run(**between_tries)

    assert result.succeeded, result.output[-4000:]
    served = pages_served(emulator)
    retry = [i for i, page in enumerate(served) if page == 1][1]
    pages = -(-orders // 25)
    assert served[:retry] == list(range(1, 24)) and served[retry:] == list(range(1, pages + 1))  # all again
    assert list(read_jsonl(f"file://{target}")) == [data.order(SEED, "FR", i) for i in range(orders)]
    if airflow_version() >= (3, 3):
        restart = re.search(r"Resume: restarting from page 1 in this try: (.*)", result.output)
        assert restart and why in restart.group(1), result.output[-4000:]
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.latest_only  # needs the task state store (Airflow >= 3.3)
def test_data_that_moved_between_the_tries_restarts_the_pull_instead_of_mixing_two_snapshots(
    emulator, resume_dag, tmp_path
):
    """Between the tries order FR00000030 (page 2) is deleted and one order appended: the totals stay (1,000
    orders, 40 pages), page 1 stays, but every page after the deletion shifts by one. Page 22, the last one
    staged, fetched again no longer matches its staged copy: the retry restarts from page 1 in the same try
    and says why."""
    run, target = resume_dag
    emulator.configure(orders_per_country=1000)
    emulator.add_fault(target="api", kind="status", status=500, times=1, match_query={"page": "23"})

    result = run(SCHNEIDER_TEST_MOVE_DATA="FR00000030")

    assert result.succeeded, result.output[-4000:]
    current = [data.order(SEED, "FR", i) for i in range(1001) if i != 29]
    assert list(read_jsonl(f"file://{target}")) == current  # the data as it is now: nothing lost, nothing kept
    restart = re.search(r"\[warning\s*\] Resume: restarting from page 1 in this try: (.*)", result.output)
    assert restart and "page 22 no longer holds the records the failed try staged" in restart.group(1)
    served = pages_served(emulator)
    retry = [i for i, page in enumerate(served) if page == 1][1]
    assert served[retry:] == [1, 22, *range(2, 41)]  # page 1, the boundary check, then every page again
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.latest_only
def test_a_checkpoint_edited_to_name_a_planted_chunk_is_refused_and_its_chunks_removed(emulator, resume_dag):
    """The checkpoint in the task state store is edited between the tries to name a planted chunk of foreign
    records with the right header, size and sha256: its seal does not match, so nothing of it is used."""
    run, target = resume_dag
    emulator.configure(orders_per_country=1000)
    emulator.add_fault(target="api", kind="status", status=500, times=1, match_query={"page": "23"})

    result = run(SCHNEIDER_TEST_PLANT="1")

    assert result.succeeded, result.output[-4000:]
    records = list(read_jsonl(f"file://{target}"))
    assert records == [data.order(SEED, "FR", i) for i in range(1000)]
    assert not any(str(r.get("orderNumber", "")).startswith("EVIL") for r in records)
    assert "does not carry this pull's seal" in result.output
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []  # planted chunk gone too
