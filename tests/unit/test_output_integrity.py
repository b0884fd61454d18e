"""Outputs between runs, attacked: locations that try to leave their root, part sets that meet foreign files,
commits killed half way, leftovers of earlier tries, target names with glob characters. Real files, real
child processes killed with SIGKILL; no emulator and no Airflow process needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflow_provider_schneider.exceptions import SchneiderConfigError
from airflow_provider_schneider.outputs import commit, ownership
from airflow_provider_schneider.outputs.location import OutputLocationError, check_confined, static_root
from airflow_provider_schneider.outputs.storage import TaskTry, WriterTag, to_storage_path
from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter
from airflow_provider_schneider.sinks import part_uris, read_jsonl

# -- confined locations ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "root"),
    [
        ("file:///data/base/{{ params.region }}", "file:///data/base/"),
        ("file:///data/base-{{ params.region }}/x", "file:///data/"),
        ("s3://bucket/team/{{ ds }}/{{ params.x }}", "s3://bucket/team/"),
        ("s3://{{ params.bucket }}/x", ""),
        ("{{ var.value.target }}", ""),
        ("file:///data/plain.jsonl", None),
    ],
)
def test_the_static_root_of_a_template_is_what_precedes_its_first_marker(template, root):
    assert static_root(template) == root


@pytest.mark.parametrize(
    "rendered",
    [
        "file:///data/base/../victim",
        "file:///data/base/%2e%2e/victim",
        "file:///data/base/%2E%2e/victim",
        "file:///data/base/%252e%252e/victim",  # encoded twice
        "file:///data/base/..%2fvictim",  # a slash inside the segment once decoded
        "file:///data/base/..\\victim",
        "file:///data/base/./x",
        "file:///data/base/x\x00y",
        "file:///data/base/x%0Ay",
    ],
)
def test_a_location_that_could_climb_out_is_refused(rendered):
    with pytest.raises(OutputLocationError, match="pull: output_path") as caught:
        check_confined(rendered, "file:///data/base/", "pull: output_path")
    assert isinstance(caught.value, SchneiderConfigError)  # no retry: the input must change


@pytest.mark.parametrize(
    ("rendered", "root"),
    [
        ("file:///data/base-evil/x.jsonl", "file:///data/base/"),  # a sibling sharing the prefix
        ("file:///data/x.jsonl", "file:///data/base/"),
        ("s3://other-bucket/base/x.jsonl", "s3://bucket/base/"),
        ("gs://bucket/base/x.jsonl", "s3://bucket/base/"),
        ("file:///data/base/", "file:///data/base/"),  # the root itself is no output
    ],
)
def test_a_location_outside_its_root_is_refused(rendered, root):
    with pytest.raises(OutputLocationError, match="is not inside"):
        check_confined(rendered, root, "pull: output_path")


def test_a_location_inside_its_root_passes():
    check_confined("file:///data/base/FR/x.jsonl", "file:///data/base/", "t")
    check_confined("/data/base/FR/x.jsonl", "file:///data/base/", "t")  # a plain path is a local file
    check_confined("s3://bucket/base/a%20b/x.jsonl", "s3://bucket/base/", "t")
    check_confined("file:///data/base/v1..2/x.jsonl", None, "t")  # dots inside a name are no segment


def test_a_secret_in_a_location_never_reaches_the_error():
    with pytest.raises(OutputLocationError) as caught:
        check_confined("s3://AKIAKEY:very-secret@bucket/../x", None, "t")
    assert "very-secret" not in str(caught.value) and "***@" in str(caught.value)


# -- part sets own only their files ------------------------------------------------------------------------------


def write_set(uri: str, records: list[dict], per_file: int = 2, **kwargs) -> dict:
    with RecordWriter(OutputSpec(uri, max_records_per_file=per_file), **kwargs) as writer:
        for record in records:
            writer.write(record)
    return writer.manifest


def rows(n: int, tag: str = "a") -> list[dict]:
    return [{"id": i, "tag": tag} for i in range(n)]


def test_a_set_replaces_only_its_own_parts_and_says_what_it_wrote(tmp_path):
    target = tmp_path / "out"
    first = write_set(f"file://{target}", rows(6))
    marker = json.loads((target / ownership.SET_MARKER).read_text())
    assert [p["name"] for p in marker["parts"]] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    assert [p["sha256"] for p in marker["parts"]] == [p["sha256"] for p in first["parts"]]

    second = write_set(f"file://{target}", rows(3, "b"))  # shorter: no part of the longer set survives
    assert sorted(p.name for p in target.iterdir()) == [ownership.SET_MARKER, "part-00000.jsonl", "part-00001.jsonl"]
    assert [r for uri in part_uris(second) for r in read_jsonl(uri)] == rows(3, "b")


@pytest.mark.parametrize("foreign", ["keep.txt", "important/data.csv", ".hidden"])
def test_a_folder_holding_foreign_files_is_refused_and_left_untouched(tmp_path, foreign):
    target = tmp_path / "out"
    write_set(f"file://{target}", rows(4))
    planted = target / foreign
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text("not ours")
    before = sorted(str(p.relative_to(target)) for p in target.rglob("*"))

    with pytest.raises(ownership.OutputConflict, match=r"orders: output_path: the folder .* holds files this provider"):
        write_set(f"file://{target}", rows(2, "b"), where="orders: output_path")

    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == before
    assert planted.read_text() == "not ours"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left beside it


def test_a_folder_of_someone_else_is_refused_before_anything_is_written(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.docx").write_text("years of work")
    writer = RecordWriter(OutputSpec(f"file://{victim}", max_records_per_file=5), where="t: output_path")
    with pytest.raises(ownership.OutputConflict):
        writer.__enter__()  # the writer's start: the operator enters it before the first API call
    assert [p.name for p in victim.iterdir()] == ["thesis.docx"]


def test_a_legacy_set_without_marker_is_still_replaced(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    for i in range(3):
        (target / f"part-{i:05d}.jsonl").write_text('{"old": true}\n')
    write_set(f"file://{target}", rows(2))
    assert sorted(p.name for p in target.iterdir()) == [ownership.SET_MARKER, "part-00000.jsonl"]


def test_a_file_output_never_replaces_a_folder(tmp_path):
    folder = tmp_path / "x.jsonl"
    folder.mkdir()
    (folder / "a").write_text("kept")
    with pytest.raises(ownership.OutputConflict, match="is a folder"):
        with RecordWriter(OutputSpec(f"file://{folder}")) as writer:
            writer.write({"a": 1})
    assert (folder / "a").read_text() == "kept"


def test_a_symbolic_link_is_never_followed_into_a_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "part-00000.jsonl").write_text("theirs\n")
    (tmp_path / "out").symlink_to(elsewhere)
    with pytest.raises(ownership.OutputConflict, match="symbolic link"):
        write_set(f"file://{tmp_path / 'out'}", rows(2))
    assert (elsewhere / "part-00000.jsonl").read_text() == "theirs\n"


# -- commits killed half way ------------------------------------------------------------------------------------

KILLED_COMMIT = r"""
import os, sys
from airflow_provider_schneider.outputs import commit, ownership
from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter

target, mode = sys.argv[1], sys.argv[2]
real_rename, real_exchange = os.rename, commit.exchange

def die():
    os.kill(os.getpid(), 9)

if mode == "between-renames":  # a filesystem without RENAME_EXCHANGE: two renames under a journal
    commit.exchange = lambda a, b: False
    def rename(src, dst):
        real_rename(src, dst)
        if src == target:  # the old set has just been moved aside
            die()
    os.rename = rename
elif mode == "after-exchange":
    def exchange(a, b):
        done = real_exchange(a, b)
        die()
    commit.exchange = exchange

with RecordWriter(OutputSpec("file://" + target, max_records_per_file=2)) as writer:
    for i in range(5):
        writer.write({"id": i, "tag": "new"})
"""


def killed_commit(tmp_path: Path, target: Path, mode: str) -> int:
    script = tmp_path / "killed_commit.py"
    script.write_text(textwrap.dedent(KILLED_COMMIT))
    proc = subprocess.run([sys.executable, str(script), str(target), mode], capture_output=True, timeout=120)
    return proc.returncode


def set_records(target: Path) -> list[dict]:
    marker = json.loads((target / ownership.SET_MARKER).read_text())
    return [r for p in marker["parts"] for r in read_jsonl(f"file://{target / p['name']}")]


def test_a_kill_right_after_the_exchange_leaves_the_new_set_and_the_next_run_cleans_up(tmp_path):
    target = tmp_path / "out"
    write_set(f"file://{target}", rows(4, "old"))

    assert killed_commit(tmp_path, target, "after-exchange") == -signal.SIGKILL

    assert [r["tag"] for r in set_records(target)] == ["new"] * 5  # complete, the new set
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert len(leftovers) == 1  # the old set, under the dead writer's staging name
    write_set(f"file://{target}", rows(3, "next"))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


def test_a_kill_between_the_two_renames_is_undone_by_the_next_writer(tmp_path):
    target = tmp_path / "out"
    write_set(f"file://{target}", rows(4, "old"))

    assert killed_commit(tmp_path, target, "between-renames") == -signal.SIGKILL
    assert not target.exists()  # the one instant the fallback cannot avoid: it is journaled
    assert commit.journal_of(to_storage_path(f"file://{target}")).exists()

    # The next writer of the target starts by restoring the old set; if its own pull then fails, the old
    # set is what stays (it used to be deleted by the next successful run's clean-up).
    with pytest.raises(RuntimeError, match="the API broke"):
        with RecordWriter(OutputSpec(f"file://{target}", max_records_per_file=2)):
            assert [r["tag"] for r in set_records(target)] == ["old"] * 4
            raise RuntimeError("the API broke")
    assert [r["tag"] for r in set_records(target)] == ["old"] * 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []

    write_set(f"file://{target}", rows(3, "next"))
    assert [r["tag"] for r in set_records(target)] == ["next"] * 3


def test_an_interrupted_object_store_commit_is_finished_from_its_journal(tmp_path):
    """The object-store path (copy part by part) on fsspec's in-memory store, killed after one copy."""
    from fsspec.implementations.memory import MemoryFileSystem

    MemoryFileSystem.store.clear()
    target = to_storage_path("memory://bucket/out")
    write_set("memory://bucket/out", rows(6, "old"))
    staged = WriterTag.new().temporary(target)
    staged.mkdir()
    for i, name in enumerate(["part-00000.jsonl", "part-00001.jsonl"]):
        (staged / name).write_text(json.dumps({"id": i, "tag": "new"}) + "\n")
    (staged / ownership.SET_MARKER).write_text(
        ownership.set_marker([{"name": "part-00000.jsonl"}, {"name": "part-00001.jsonl"}])
    )
    old = sorted(ownership.owned_parts(target, "t"))
    commit._write_journal(target, {"staged": staged.name, "new": ["part-00000.jsonl", "part-00001.jsonl"], "old": old})
    (staged / "part-00000.jsonl").rename(target / "part-00000.jsonl")  # one copy done, then the writer died

    commit.recover(target)

    assert sorted(p.name for p in target.iterdir()) == [ownership.SET_MARKER, "part-00000.jsonl", "part-00001.jsonl"]
    assert [json.loads((target / n).read_text())["tag"] for n in ("part-00000.jsonl", "part-00001.jsonl")] == [
        "new",
        "new",
    ]
    assert not staged.exists() and not commit.journal_of(target).exists()


# -- leftovers of earlier tries, names with glob characters -------------------------------------------------------


def test_a_retry_on_another_host_removes_the_partials_of_earlier_tries(tmp_path):
    target = tmp_path / "orders.jsonl"
    other_host = WriterTag("other-host-0123abcd", 4242, 1, "00ff00ff", TaskTry("abcdef012345", 1))
    not_mine = WriterTag("other-host-0123abcd", 4243, 1, "00ff00fe", TaskTry("999999999999", 1))
    for tag in (other_host, not_mine):
        tag.temporary(to_storage_path(f"file://{target}")).write_text("half a file")

    with RecordWriter(OutputSpec(f"file://{target}"), task_try=TaskTry("abcdef012345", 2)) as writer:
        writer.write({"a": 1})

    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [f".orders.jsonl{not_mine.suffix}", "orders.jsonl"]  # another task's writer may be alive


def test_target_names_with_glob_characters_are_cleaned_exactly(tmp_path):
    target = tmp_path / "orders[1].jsonl"
    dead = WriterTag("host-0123abcd", 999999, 1, "0a0b0c0d", TaskTry("abcdef012345", 1))
    dead.temporary(to_storage_path(f"file://{target}")).write_text("half")
    lookalike = tmp_path / ".orders1.jsonl.w-host-0123abcd-999999-1-0a0b0c0e.partial"  # [1] as a glob matches it
    lookalike.write_text("someone else's")

    with RecordWriter(OutputSpec(f"file://{target}"), task_try=TaskTry("abcdef012345", 2)) as writer:
        writer.write({"a": 1})

    assert sorted(p.name for p in tmp_path.iterdir()) == [lookalike.name, "orders[1].jsonl"]


# -- storage errors that say what and where ------------------------------------------------------------------------


def test_an_unwritable_location_names_the_task_the_field_and_the_uri(tmp_path):
    from airflow_provider_schneider.exceptions import SchneiderStorageError

    with pytest.raises(SchneiderStorageError, match=r"pull: output_path: cannot create the folder of file:///proc/x"):
        with RecordWriter(OutputSpec("file:///proc/x/orders.jsonl"), where="pull: output_path") as writer:
            writer.write({"a": 1})


def test_a_scheme_without_its_filesystem_names_what_to_install():
    from airflow_provider_schneider.outputs.storage import MissingFilesystem

    try:
        import s3fs  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - the cluster venv has it
        pytest.skip("s3fs is installed here")
    with pytest.raises(MissingFilesystem, match=r"pull: output_base: no filesystem for s3:// .*amazon\[s3fs\]"):
        to_storage_path("s3://bucket/x.jsonl", where="pull: output_base")


# -- review findings: what a run can still decide, forged control files ------------------------------------------


def order_op(**kwargs):
    from airflow_provider_schneider.operators import SchneiderOrderStatusOperator

    return SchneiderOrderStatusOperator(task_id="pull", country="FR", **kwargs)


def spec_of(op, unrendered: dict, context: dict | None = None):
    """``output_spec`` as it runs after Airflow rendered ``op``: ``unrendered`` is what the DAG file said."""
    from airflow_provider_schneider.pulls.target import output_spec
    from tests.support.operators import context as task_context

    op.unrendered_fields = {name: getattr(op, name) for name in op.template_fields} | unrendered
    return output_spec(op, context or task_context(), "20261104T000000__20261105T000000")


def test_a_literal_output_path_outside_a_given_output_base_is_the_authors_choice(tmp_path):
    op = order_op(output_path=f"file://{tmp_path}/exports/orders.jsonl", output_base=f"file://{tmp_path}/data")
    assert spec_of(op, {}).uri == f"file://{tmp_path}/exports/orders.jsonl"


def test_a_path_decided_by_the_run_stays_in_the_dags_own_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE", f"file://{tmp_path}/data")
    inside = order_op(output_path=f"file://{tmp_path}/data/adhoc_airflow/x.jsonl")  # a task outside a DAG
    assert inside.dag_id == "adhoc_airflow"
    assert spec_of(inside, {"output_path": "{{ params.target }}"}).uri.endswith("/data/adhoc_airflow/x.jsonl")
    other_dag = order_op(output_path=f"file://{tmp_path}/data/other_dag/other_task/20261104.jsonl")
    with pytest.raises(OutputLocationError, match="is not inside"):
        spec_of(other_dag, {"output_path": "{{ params.target }}"})
    upstream = order_op(output_path="file:///etc/cron.d/evil")  # an upstream XCom (not a string) decided it
    with pytest.raises(OutputLocationError, match="is not inside"):
        spec_of(upstream, {"output_path": object()})


@pytest.mark.parametrize("name", [".out.jsonl.commit-journal.json", "_schneider_set.json", "%2Ehidden"])
def test_a_rendered_location_cannot_name_the_providers_own_files(tmp_path, name):
    op = order_op(output_path=f"file://{tmp_path}/base/{name}")
    with pytest.raises(OutputLocationError, match="a name the provider keeps for itself"):
        spec_of(op, {"output_path": f"file://{tmp_path}/base/{{{{ params.name }}}}"})


def test_request_values_from_an_upstream_xcom_or_a_non_interval_macro_name_the_output(tmp_path):
    op = order_op(output_base=f"file://{tmp_path}/data")
    op.path_params = {"country": "DE"}  # rendered from an upstream task's XCom
    assert spec_of(op, {"path_params": {"country": object()}}).uri.endswith("/country=DE.jsonl")
    op = order_op(output_base=f"file://{tmp_path}/data", query={"order-number": "FR1234"})
    assert spec_of(op, {"query": {"order-number": "{{ macros.uuid.uuid4() }}"}}).uri.endswith(
        "/order-number=FR1234.jsonl"
    )
    op = order_op(output_base=f"file://{tmp_path}/data")
    plain = spec_of(op, {"path_params": {"country": "{{ data_interval_start.strftime('FR') }}"}})
    assert plain.uri.endswith("/20261104T000000__20261105T000000.jsonl")  # the interval alone: no segment


def test_a_readable_value_never_takes_the_name_of_a_hashed_one():
    from airflow_provider_schneider.pulls.naming import mapped_segments

    [hashed] = mapped_segments({"product_references": ["ABC1", "ABC2"]})
    forged = hashed.split("=", 1)[1]
    assert mapped_segments({"product_references": forged}) != [hashed]


def test_run_ids_that_read_alike_get_their_own_names():
    from airflow_provider_schneider.pulls.naming import interval_key

    keys = {interval_key({"run_id": run_id}) for run_id in ("a:b", "a+b", "a~b", "a_b")}
    assert len(keys) == 4 and "a_b" in keys


def test_a_siblings_leftovers_are_never_taken_for_the_targets_own(tmp_path):
    from airflow_provider_schneider.outputs.storage import hidden_siblings

    for name in (
        ".a.w-host-0123abcd-1-1-0a0b0c0d.partial",
        ".a.b.w-host-0123abcd-1-1-0a0b0c0d.partial",
        ".a.b.replaced.w-host-0123abcd-1-1-0a0b0c0d.partial",
        ".a.notes.txt",
    ):
        (tmp_path / name).write_text("x")
    assert [p.name for p in hidden_siblings(to_storage_path(f"file://{tmp_path}/a"))] == [
        ".a.w-host-0123abcd-1-1-0a0b0c0d.partial"
    ]


def test_forged_control_files_cannot_make_a_commit_delete_or_rename_what_is_not_a_part(tmp_path):
    from fsspec.implementations.memory import MemoryFileSystem

    # An object-store journal naming a file that is no part: the recovery leaves it.
    MemoryFileSystem.store.clear()
    target = to_storage_path("memory://bucket/set")
    write_set("memory://bucket/set", rows(4))
    (target / "important.csv").write_text("keep")
    commit._write_journal(target, {"staged": ".set.w-x.partial", "new": [], "old": ["important.csv"]})
    commit.recover(target)
    assert (target / "important.csv").read_text() == "keep"
    # A local journal pointing at a hidden folder that is no aside of ours: ignored.
    local = tmp_path / "out"
    foreign = tmp_path / ".out.secret-stuff"
    foreign.mkdir()
    (foreign / "f").write_text("theirs")
    commit._write_journal(to_storage_path(f"file://{local}"), {"aside": foreign.name, "staged": foreign.name})
    commit.recover(to_storage_path(f"file://{local}"))
    assert not local.exists() and (foreign / "f").read_text() == "theirs"
    # A marker that lists a file that is no part: no marker of ours, so the folder is refused, not emptied.
    write_set(f"file://{local}", rows(2))
    (local / "keep.txt").write_text("mine")
    (local / ownership.SET_MARKER).write_text(
        ownership.set_marker([{"name": "part-00000.jsonl"}, {"name": "keep.txt"}])
    )
    with pytest.raises(ownership.OutputConflict):
        write_set(f"file://{local}", rows(2, "b"))
    assert (local / "keep.txt").read_text() == "mine"


def test_a_commit_lock_from_the_future_is_no_lock():
    from fsspec.implementations.memory import MemoryFileSystem

    MemoryFileSystem.store.clear()
    target = to_storage_path("memory://bucket/locked")
    (target.parent / ".locked.commit-lock").write_text(json.dumps({"holder": "forged", "at": 1e12}))
    write_set("memory://bucket/locked", rows(3))  # used to wait COMMIT_LOCK_WAIT (15 minutes), then fail
    assert sorted(p.name for p in target.iterdir()) == [ownership.SET_MARKER, "part-00000.jsonl", "part-00001.jsonl"]


def test_a_commit_lock_held_forever_fails_the_commit_instead_of_hanging(tmp_path, fake_commit_clock):
    import fcntl

    from airflow_provider_schneider.exceptions import SchneiderStorageError

    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)  # anyone who can read the folder can do this
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(SchneiderStorageError, match="held the commit lock"):
            write_set(f"file://{tmp_path}/out", rows(3))
    finally:
        os.close(fd)


def test_a_chunk_swapped_after_its_check_fails_the_read_back(tmp_path):
    from airflow_provider_schneider.outputs.staging import ChunkOwner, ChunkWriter, problem_with, read_chunk

    target = to_storage_path(f"file://{tmp_path}/t.jsonl")
    owner = ChunkOwner("fp", "abcdef012345", 1)
    chunks = []
    for records in ([{"id": 1}, {"id": 2}], [{"id": "EVIL"}, {"id": "EVIL"}]):
        writer = ChunkWriter(target, owner, 1, WriterTag.new(), lambda: 0.0)
        writer.write(1, records)
        chunks.append(writer.commit())
    real, other = chunks
    assert problem_with(target.parent, real, owner) is None
    (tmp_path / real.name).write_bytes((tmp_path / other.name).read_bytes())  # swapped after the check
    with pytest.raises(ValueError, match="changed since it was checked"):
        list(read_chunk(target.parent, real))


def test_uris_with_credentials_never_reach_an_error():
    from airflow_provider_schneider.outputs.location import shown_uri
    from airflow_provider_schneider.outputs.storage import MissingFilesystem

    assert shown_uri("sftp://user:Sup3rS3cret@host/x and s3://AK:sk@b/y") == "sftp://***@host/x and s3://***@b/y"
    try:
        to_storage_path("sftp://user:Sup3rS3cret@host/x.jsonl", where="t: output_path")
    except MissingFilesystem as exc:
        assert "Sup3rS3cret" not in str(exc)


def test_dots_encoded_any_number_of_times_are_refused():
    segment = ".."
    for _ in range(7):
        segment = segment.replace("%", "%25").replace(".", "%2e")
    with pytest.raises(OutputLocationError):
        check_confined(f"file:///data/base/{segment}/victim", "file:///data/base/", "t")


def test_an_edited_checkpoint_header_is_refused(tmp_path, caplog):
    import logging

    from airflow_provider_schneider.outputs.staging import ChunkOwner
    from airflow_provider_schneider.pulls.checkpoint import CHECKPOINT_KEY, Checkpoint, seal_key
    from airflow_provider_schneider.pulls.resume import ResumablePull
    from tests.support.fakes import DictStore

    store, owner = DictStore(), ChunkOwner("fp", "abcdef012345", 1)
    target = to_storage_path(f"file://{tmp_path}/t.jsonl")
    log = logging.getLogger("resume-test")
    pull = ResumablePull(store, target, owner, seal_key("secret"), log, max_age=3600)
    pull._save(Checkpoint("fp", 1, 40, 1000, started_at=pull.started_at))
    assert ResumablePull(store, target, owner, seal_key("secret"), log, max_age=3600).previous is not None
    for edit in ({"saved_at": 4e9}, {"saved_at": 1.0}, {"total_pages": 41}):
        store.values[CHECKPOINT_KEY] = {**store.values[CHECKPOINT_KEY], **edit}
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert ResumablePull(store, target, owner, seal_key("secret"), log, max_age=3600).previous is None
        assert "does not carry this pull's seal" in caplog.text
        pull._save(Checkpoint("fp", 1, 40, 1000, started_at=pull.started_at))  # a genuine one again


def test_a_literal_output_base_ending_in_a_slash_is_the_authors_own(tmp_path):
    op = order_op(output_base=f"file://{tmp_path}/data/")
    assert spec_of(op, {}).uri.startswith(f"file://{tmp_path}/data/adhoc_airflow/pull/")


def test_a_run_id_shaped_like_a_hashed_one_cannot_take_its_name():
    from airflow_provider_schneider.pulls.naming import interval_key

    hashed = interval_key({"run_id": "a:b"})
    assert interval_key({"run_id": hashed}) != hashed


def test_a_value_rendered_by_the_dags_own_delimiters_names_the_output(tmp_path):
    op = order_op(output_base=f"file://{tmp_path}/data")
    op.path_params = {"country": "DE"}
    assert spec_of(op, {"path_params": {"country": "[[ params.c ]]"}}).uri.endswith("/country=DE.jsonl")


def test_a_planted_chunk_is_refused_by_its_bytes_before_anything_in_it_is_unpacked(tmp_path):
    from airflow_provider_schneider.outputs.staging import Chunk, ChunkOwner, problem_with

    (tmp_path / ".t.jsonl.resume-abcdef012345-000001-000002-0a0b0c0d.jsonl.gz").write_bytes(b"x" * 200_000)
    planted = Chunk(".t.jsonl.resume-abcdef012345-000001-000002-0a0b0c0d.jsonl.gz", 1, 2, 5, 10, "0" * 64)
    why = problem_with(to_storage_path(f"file://{tmp_path}"), planted, ChunkOwner("fp", "abcdef012345", 1))
    assert why is not None and "is not what was staged" in why


def test_an_empty_first_page_without_a_record_count_ends_the_pull():
    from airflow_provider_schneider.client.pagination import PageCounters, iter_pages

    asked: list[int] = []

    def fetch(number: int) -> dict:
        asked.append(number)
        return {"orderList": [], "pagination": {"totalNumberOfPages": 50, "pageNumber": number}}

    def error(message: str, page: int) -> Exception:
        return ValueError(message)

    pages = list(iter_pages(fetch, counters=PageCounters(error, "orderList")))
    assert asked == [1] and [p.records for p in pages] == [[]]
