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
from tests.operators_support import local, partials

SEED = 42
ORDERS = "/v1/supply-chain/partner-order-status/orders/FR"

RESUME_DAG = '''
import datetime as dt
import os

import pendulum
from airflow.sdk import dag

from airflow_provider_schneider.operators import SchneiderOrderStatusOperator


def change_the_data(context):
    """Between the tries: the emulator serves another number of orders (SCHNEIDER_TEST_ORDERS_ON_RETRY), or
    one byte of a staged chunk changes (SCHNEIDER_TEST_ALTER_CHUNK)."""
    orders = os.environ.get("SCHNEIDER_TEST_ORDERS_ON_RETRY")
    if orders:
        from airflow_provider_schneider.emulator.client import EmulatorClient

        EmulatorClient(os.environ["SCHNEIDER_TEST_EMULATOR_URL"]).configure(orders_per_country=int(orders))
    if os.environ.get("SCHNEIDER_TEST_ALTER_CHUNK"):
        import glob

        for chunk in sorted(glob.glob("{base}/**/.*.resume-*.jsonl.gz", recursive=True))[3:4]:  # none below 3.3
            data = bytearray(open(chunk, "rb").read())
            data[len(data) // 2] ^= 0xFF
            open(chunk, "wb").write(bytes(data))


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


def airflow_version() -> tuple[int, int]:
    from airflow import __version__

    major, minor = __version__.split(".")[:2]
    return int(major), int(minor)


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
        env = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags), "SCHNEIDER_TEST_EMULATOR_URL": emulator.url, **env}
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
    assert second_try == [1, *range(23, 41)], second_try  # page 1 (the totals), then after the checkpoint
    staged = re.search(r"Resume: pages 1-(\d+) staged in (\d+) chunks? \((\d+) checkpoints? this try\)", result.output)
    assert staged and staged.groups() == ("22", "11", "11"), result.output[-4000:]  # batched: not one per page
    assert "Resume: pages 1-22 (550 records) are staged by an earlier try; fetching pages 23-40" in result.output


@pytest.mark.latest_only  # below 3.3 there is nothing to distrust: the first test checks the no-op there
@pytest.mark.parametrize(
    ("between_tries", "orders", "why"),
    [
        ({"SCHNEIDER_TEST_ORDERS_ON_RETRY": "990"}, 990, "the totals changed from 40 pages / 1000 records"),
        ({"SCHNEIDER_TEST_ALTER_CHUNK": "1"}, 1000, "-000008-"),  # the 4th chunk: pages 7-8, one byte flipped
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
        restart = re.search(r"Resume: restarting from page 1: (.*)", result.output)
        assert restart and why in restart.group(1), result.output[-4000:]
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []
