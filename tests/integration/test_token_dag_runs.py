"""Token reuse across real Airflow task runs: ``airflow dags test`` processes on the session's metadata DB.

Each run is a separate process running ``dags/schneider_token_probe.py`` (one token, one API call); its
``SCHNEIDER_SUMMARY`` says where the token came from. A run costs ~8 s, so this file keeps their number low.
"""

from __future__ import annotations

import os
import stat

import pytest

from airflow_provider_schneider.tokens.sealing import CacheKey, TokenCipher
from airflow_provider_schneider.tokens.tiers import VARIABLE_PREFIX
from tests.conftest import CLIENT_ID, CLIENT_SECRET
from tests.support.tokens import TOKEN_LOG_LINE, delete_token_variables, issued_tokens, token_variables

DAG_ID = "schneider_token_probe"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(autouse=True)
def empty_cluster_tier(airflow_db):
    """The token Variable outlives a test in the session DB (and the emulator forgets its tokens)."""
    delete_token_variables()
    yield
    delete_token_variables()


def probe(run_dag) -> tuple[dict, str]:
    result = run_dag(DAG_ID)
    assert result.succeeded, result.output[-4000:]
    [summary] = result.summaries
    return summary, result.output


def cipher(emulator, secret: str = CLIENT_SECRET) -> TokenCipher:
    return TokenCipher(secret, CacheKey(f"{emulator.url}/token", CLIENT_ID, ""))


def the_token_variable(emulator) -> str:
    """The one token Variable, named after the cache key (token URL + client id + scope), as stored."""
    key = VARIABLE_PREFIX + CacheKey(f"{emulator.url}/token", CLIENT_ID, "").digest
    variables = token_variables()
    assert list(variables) == [key]
    return variables[key]


@pytest.mark.latest_only
def test_ten_sequential_task_runs_make_one_token_request(emulator, run_dag):
    summaries, outputs = zip(*(probe(run_dag) for _ in range(10)), strict=True)

    assert emulator.stats()["token_requests"] == 1
    assert [s["token_source"] for s in summaries] == ["endpoint"] + ["file"] * 9
    log = "".join(outputs)
    assert log.count(TOKEN_LOG_LINE) == 1
    assert "connection 'schneider_default' (cache miss: memory (empty), file (empty), variable (empty))" in log
    for token in issued_tokens(emulator):
        assert token not in log


def test_second_host_reuses_the_token_through_the_variable_until_the_secret_rotates(
    emulator, run_dag, schneider_conn, tmp_path
):
    """Two workers = two host cache directories, one metadata DB: one token request in all. Then the secret
    rotates: neither the host file nor the Variable (sealed with the old secret) is used, and nothing breaks.
    """
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"

    schneider_conn(token_cache_dir=str(host_a))
    first, _ = probe(run_dag)
    schneider_conn(token_cache_dir=str(host_b))
    second, log_b = probe(run_dag)

    assert (first["token_source"], second["token_source"]) == ("endpoint", "variable")
    assert emulator.stats()["token_requests"] == 1
    assert TOKEN_LOG_LINE not in log_b
    [token] = issued_tokens(emulator)
    stored = the_token_variable(emulator)
    assert token not in stored and CLIENT_SECRET not in stored
    assert cipher(emulator).open(stored).access_token == token  # type: ignore[union-attr]
    assert cipher(emulator, secret="not-the-secret").open(stored) is None
    # host B promoted the token into its own file cache: its next task run needs no Variable call
    [entry] = host_b.glob("*.token")
    assert stat.S_IMODE(os.stat(entry).st_mode) == 0o600 and stat.S_IMODE(os.stat(host_b).st_mode) == 0o700
    assert token.encode() not in entry.read_bytes()

    emulator.configure(client_secret="rotated-secret")
    schneider_conn(password="rotated-secret", token_cache_dir=str(host_b))
    third, log = probe(run_dag)

    assert third["token_source"] == "endpoint"
    assert emulator.stats()["token_requests"] == 2
    unreadable = "unreadable: corrupt, foreign or other secret"
    assert f"file ({unreadable}), variable ({unreadable})" in log
    rotated = the_token_variable(emulator)
    assert rotated != stored
    assert cipher(emulator, secret="rotated-secret").open(rotated) is not None
    assert cipher(emulator).open(rotated) is None
