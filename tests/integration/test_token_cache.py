"""The token cache in one process: real files, real locks, real tokens from the emulator.

Multi-process behaviour (single flight, renewal mid-pull, revocation) is in test_token_processes.py and
across DAG runs and hosts in test_token_dag_runs.py.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import time
from pathlib import Path

import pytest

from airflow_provider_schneider.hooks.schneider import SchneiderHook
from airflow_provider_schneider.process import STATE
from airflow_provider_schneider.tokens.manager import TokenManager
from airflow_provider_schneider.tokens.sealing import MAX_ENTRY_BYTES, CacheKey, TokenCipher
from airflow_provider_schneider.tokens.token import Token, token_id
from tests.conftest import CLIENT_ID, CLIENT_SECRET
from tests.support.tokens import issued_tokens, run_child

pytestmark = pytest.mark.dialects  # a gateway's shapes can break what these test


def manager(conn_id: str = "schneider_default") -> TokenManager:
    """A fresh hook's token manager (a new hook is what every task run builds)."""
    tm = SchneiderHook(conn_id).token_manager
    assert tm is not None
    return tm


def forget_process_memory() -> None:
    """What a new task process starts with: nothing in memory, only the shared tiers."""
    STATE.reset()


def cipher_for(emulator, secret: str = CLIENT_SECRET, scope: str = "") -> TokenCipher:
    return TokenCipher(secret, CacheKey(f"{emulator.url}/token", CLIENT_ID, scope))


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_cache_files_are_private_and_hold_no_token_in_clear(emulator, schneider_conn, token_cache_dir):
    token = manager().get_token()

    entry = manager().file.path  # type: ignore[union-attr]
    assert mode(token_cache_dir) == 0o700
    assert mode(entry) == 0o600 and mode(entry.with_suffix(".lock")) == 0o600
    for path in token_cache_dir.iterdir():
        content = path.read_bytes()
        assert token.access_token.encode() not in content
        assert CLIENT_SECRET.encode() not in content
    assert cipher_for(emulator).open(entry.read_bytes()) == token
    assert cipher_for(emulator, secret="another-secret").open(entry.read_bytes()) is None
    assert emulator.stats()["token_requests"] == 1


def test_a_loose_existing_cache_directory_is_made_private(emulator, schneider_conn, token_cache_dir):
    token_cache_dir.mkdir(mode=0o755)
    os.chmod(token_cache_dir, 0o755)
    manager().get_token()
    assert mode(token_cache_dir) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the directory to another user")
def test_a_cache_directory_owned_by_another_user_is_not_used(emulator, schneider_conn, token_cache_dir, caplog):
    token_cache_dir.mkdir()
    os.chown(token_cache_dir, 65534, 65534)
    tm = manager()
    tm.get_token()
    assert tm.file is None and list(token_cache_dir.iterdir()) == []
    assert "belongs to another user" in caplog.text


def test_an_unusable_cache_directory_degrades_to_the_other_tiers(emulator, schneider_conn, tmp_path, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    schneider_conn(token_cache_dir=str(blocker / "tokens"))
    first, second = manager(), manager()
    assert first.file is None
    assert first.get_token() == second.get_token()  # memory still shares within the process
    assert emulator.stats()["token_requests"] == 1
    assert "Schneider token file cache disabled" in caplog.text


def _sealed_json(emulator, payload: bytes) -> bytes:
    return cipher_for(emulator)._fernet.encrypt(payload)


@pytest.mark.parametrize(
    "damage",
    ["empty", "garbage", "truncated", "foreign key", "other secret", "oversized", "not a token", "directory"],
)
def test_corrupt_truncated_or_foreign_entries_are_ignored_and_overwritten(emulator, schneider_conn, damage):
    tm = manager()
    good = tm.get_token()
    entry = tm.file.path  # type: ignore[union-attr]
    sealed = entry.read_bytes()
    other_scope = cipher_for(emulator, scope="elsewhere").seal(good).encode()
    other_secret = cipher_for(emulator, secret="old-secret").seal(good).encode()
    content = {
        "empty": b"",
        "garbage": os.urandom(300),
        "truncated": sealed[: len(sealed) // 2],
        "foreign key": other_scope,
        "other secret": other_secret,
        "oversized": b"A" * (MAX_ENTRY_BYTES + 10),
        "not a token": _sealed_json(emulator, b'["access_token", 1]'),
    }
    entry.unlink()
    if damage == "directory":
        entry.mkdir()
    else:
        entry.write_bytes(content[damage])
    forget_process_memory()

    fresh = manager()
    token = fresh.get_token()  # never raises

    assert fresh.last_source == "endpoint" and token != good
    assert emulator.stats()["token_requests"] == 2
    if damage != "directory":  # a directory in the way cannot be replaced; the tier just misses
        assert cipher_for(emulator).open(entry.read_bytes()) == token  # overwritten with the new token


def _plant(tm: TokenManager, token: Token) -> None:
    tm.file.write(token)  # type: ignore[union-attr]
    forget_process_memory()


def test_expired_and_implausible_entries_are_not_used(emulator, schneider_conn):
    tm = manager()
    good = tm.get_token()
    now = time.time()
    expired = Token(good.access_token, expires_at=now - 1, lifetime=3600)
    from_the_future = Token(good.access_token, expires_at=now + 3 * 3600, lifetime=3600)  # clock jumped back
    for planted in (expired, from_the_future):
        _plant(tm, planted)
        fresh = manager()
        assert fresh.get_token().access_token != good.access_token
        assert fresh.last_source == "endpoint"
    assert emulator.stats()["token_requests"] == 3


def test_leeway_is_capped_so_short_lived_tokens_are_used(emulator, schneider_conn):
    schneider_conn(token_leeway=300, token_refresh_spread=0)
    tm = manager()
    short = Token("t" * 40, expires_at=1000.0, lifetime=8)  # leeway capped at 25% of 8 s = 2 s
    assert tm.usable(short, now=997.9) and not tm.usable(short, now=998.0)
    hourly = Token("h" * 40, expires_at=10_000.0, lifetime=3600)  # full 300 s leeway
    assert tm.usable(hourly, now=9_699.0) and not tm.usable(hourly, now=9_700.0)


def test_refresh_point_is_spread_between_processes(emulator, schneider_conn):
    """Renewal happens somewhere in [leeway, 1.5 x leeway] before expiry, at a different point per manager,
    so hosts that started together do not all renew at once."""
    schneider_conn(token_leeway=300)
    hourly = Token("h" * 40, expires_at=10_000.0, lifetime=3600)
    points = set()
    for _ in range(20):
        tm = manager()
        assert tm.usable(hourly, now=9_549.0) and not tm.usable(hourly, now=9_700.0)
        points.add(next(t for t in range(9_549, 9_701) if not tm.usable(hourly, now=float(t))))
    assert len(points) > 5


def test_tokens_are_keyed_by_token_url_client_id_and_scope(emulator, schneider_conn):
    schneider_conn("schneider_same_credentials")
    schneider_conn("schneider_other_scope", scope="other")
    a, b, c = manager(), manager("schneider_same_credentials"), manager("schneider_other_scope")
    assert a.get_token() == b.get_token()
    assert c.get_token() != a.get_token()
    assert emulator.stats()["token_requests"] == 2
    base = CacheKey("https://api.se.com/token", "client-a", "")
    assert len({base.digest, CacheKey("https://api.se.com/token", "client-b", "").digest}) == 2
    assert len({base.digest, CacheKey("https://api.qa.se.com/token", "client-a", "").digest}) == 2


def test_rotated_secret_ignores_every_cached_token(emulator, schneider_conn, token_cache_dir):
    old = manager().get_token()
    emulator.configure(client_secret="rotated-secret")
    schneider_conn(password="rotated-secret")

    tm = manager()  # same process: the memory tier is keyed by the secret too
    new = tm.get_token()

    assert new != old and tm.last_source == "endpoint"
    assert emulator.stats()["token_requests"] == 2
    sealed = tm.file.path.read_bytes()  # type: ignore[union-attr]
    assert cipher_for(emulator, secret="rotated-secret").open(sealed) == new
    assert cipher_for(emulator).open(sealed) is None


def test_invalidate_keeps_a_fresher_token_another_process_stored(emulator, schneider_conn):
    """Compare before delete: our 401 must not wipe the token a peer process fetched meanwhile."""
    tm = manager()
    stale = tm.get_token()
    tm.file.path.unlink()  # type: ignore[union-attr] - the peer already invalidated ``stale`` itself...
    [peer], _ = run_child({"mode": "call"})  # ...and stored a new token (a real separate process)
    assert peer["source"] == "endpoint"

    tm.invalidate(stale)

    assert token_id(tm.file.read()) == peer["token_id"]  # type: ignore[union-attr, arg-type]
    again = manager().get_token()
    assert token_id(again) == peer["token_id"]
    assert emulator.stats()["token_requests"] == 2  # ours and the peer's, no third one

    tm.invalidate(again)  # invalidating the token the tier holds does remove it
    assert not tm.file.path.exists()  # type: ignore[union-attr]


def test_a_rejected_token_is_not_reused_even_if_a_tier_still_holds_it(emulator, schneider_conn):
    tm = manager()
    rejected = tm.get_token()
    sealed = tm.file.path.read_bytes()  # type: ignore[union-attr]
    tm.invalidate(rejected)
    tm.file.path.write_bytes(sealed)  # type: ignore[union-attr] - a peer re-promotes it from the cluster tier
    fresh = tm.get_token()
    assert fresh != rejected and tm.last_source == "endpoint"
    assert emulator.stats()["token_requests"] == 2


def test_one_info_line_per_token_request_naming_connection_and_tiers(emulator, schneider_conn, caplog):
    caplog.set_level(logging.INFO, logger="airflow_provider_schneider.tokens.manager")
    tm = manager()
    first = tm.get_token()
    manager().get_token()
    manager().get_token()
    tm.invalidate(first)
    second = tm.get_token()

    lines = [r.getMessage() for r in caplog.records if r.name == "airflow_provider_schneider.tokens.manager"]
    requests = [line for line in lines if line.startswith("Requested a new Schneider token")]
    assert len(requests) == emulator.stats()["token_requests"] == 2
    assert "connection 'schneider_default'" in requests[0]
    assert "cache miss: memory (empty), file (empty), variable (outside a task)" in requests[0]
    assert "valid until" in requests[0]
    assert "previous token rejected with HTTP 401" in requests[1]
    for token in (first.access_token, second.access_token, *issued_tokens(emulator)):
        assert token not in caplog.text


def test_outside_a_task_the_variable_tier_is_skipped(emulator, schneider_conn):
    tm = manager()
    tm.get_token()
    assert tm.variable is not None and tm.variable.status() == "outside a task"
    assert tm.last_source == "endpoint"


def test_a_stuck_lock_holder_delays_but_does_not_fail_a_task(emulator, schneider_conn, caplog):
    schneider_conn(token_wait_timeout=1)
    tm = manager()
    fd = os.open(tm.file.lock_path, os.O_RDWR | os.O_CREAT, 0o600)  # type: ignore[union-attr]
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a peer holding the host lock and never letting go
        token = tm.get_token()
    finally:
        os.close(fd)
    assert token.access_token and tm.last_source == "endpoint"
    assert "continuing without the lock" in caplog.text
    assert emulator.stats()["token_requests"] == 1


@pytest.mark.parametrize(("tiers", "expected_requests", "files"), [("none", 2, False), ("memory", 1, False)])
def test_tiers_can_be_turned_off(emulator, schneider_conn, token_cache_dir, tiers, expected_requests, files):
    schneider_conn(token_cache=tiers)
    manager().get_token()
    manager().get_token()
    assert emulator.stats()["token_requests"] == expected_requests
    assert (token_cache_dir.exists() and any(token_cache_dir.iterdir())) is files
