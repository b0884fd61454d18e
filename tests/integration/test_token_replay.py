"""After a 401 the replay carries a token the endpoint issued after that 401, never another cached one.

Real gateway emulator, real token files; the cluster tier is a fake Variable API of this process (the Task
SDK's ``Variable`` is only reachable inside a running task). A revoked token in the Variable tier while the
host file holds another revoked one used to be replayed, and the 401 that followed was reported as "a
freshly issued token was rejected" although no token had been requested.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_provider_schneider.client.http import SchneiderHttpClient
from airflow_provider_schneider.exceptions import SchneiderPermissionError
from airflow_provider_schneider.hooks.schneider import SchneiderHook
from airflow_provider_schneider.tokens.bearer import BearerTokenAuth
from airflow_provider_schneider.tokens.manager import TokenManager
from airflow_provider_schneider.tokens.token import Token, token_id
from tests.support.tokens import ORDERS_PATH, FakeVariableApi, run_child, use_fake_variables

pytestmark = pytest.mark.dialects  # a gateway's shapes can break what these test

ORDERS = ORDERS_PATH.format(country="FR")
FRESH = "a freshly issued token was rejected"


def api_calls(emulator) -> list[tuple[str, int | None]]:
    """``(outcome, issue number of the token carried)`` of each API call, oldest first."""
    return [(r["outcome"], r["token"]) for r in emulator.request_log() if r["channel"] == "api"]


def manager_of(hook: SchneiderHook) -> TokenManager:
    tm = hook.token_manager
    assert tm is not None and tm.file is not None and tm.variable is not None
    return tm


@pytest.fixture
def split_tiers(emulator, schneider_conn, monkeypatch):
    """A hook whose host file holds token 1 and whose Variable tier holds token 2, both revoked."""
    schneider_conn(token_cluster_settle=0.05)
    use_fake_variables(monkeypatch, FakeVariableApi())
    hook = SchneiderHook()
    tm = manager_of(hook)
    assert tm.variable is not None and tm.variable.status() is None
    now = time.time()
    first, second = emulator.get_token(), emulator.get_token()  # issue numbers 1 and 2
    tm.file.write(Token(first, expires_at=now + 3000, lifetime=3600))  # type: ignore[union-attr]
    tm.variable.write(Token(second, expires_at=now + 2400, lifetime=3600))
    assert emulator.revoke_tokens() == 2
    return hook


def test_a_401_is_replayed_with_a_new_token_not_the_other_cached_one(emulator, split_tiers, caplog):
    caplog.set_level(logging.INFO, logger="airflow_provider_schneider.tokens.manager")
    body = split_tiers.request("GET", ORDERS, params={"page-size": 1})

    assert body["pagination"]["totalNumberOfRecords"] == 250
    assert api_calls(emulator) == [("401", 1), ("200", 3)]  # the replay never carried token 2
    assert emulator.stats()["token_requests"] == 3  # the two planted ones and exactly one new
    assert "variable (older than the HTTP 401)" in caplog.text
    tm = manager_of(split_tiers)
    fresh = tm.get_token()
    assert tm.file.read() == fresh and tm.variable.read() == fresh  # type: ignore[union-attr]


def test_a_rejected_new_token_is_reported_as_freshly_issued(emulator, split_tiers):
    emulator.add_fault(target="api", kind="status", status=401, times=2)
    with pytest.raises(SchneiderPermissionError) as info:
        split_tiers.request("GET", ORDERS, params={"page-size": 1})

    assert FRESH in str(info.value) and info.value.status == 401
    assert api_calls(emulator) == [("401", 1), ("401", 3)]  # the claim is true: token 3 was just issued
    assert emulator.stats()["token_requests"] == 3


def test_a_fixed_token_is_not_replayed_nor_called_freshly_issued(emulator, schneider_conn):
    """test_connection calls with the one token it requested: a replay could only repeat it."""
    schneider_conn(test_path=f"{ORDERS}?page-size=1")
    emulator.add_fault(target="api", kind="status", status=401, times=2)
    ok, message = SchneiderHook().test_connection()

    assert not ok and "the token was rejected" in message and "freshly" not in message
    stats = emulator.stats()
    assert (stats["token_requests"], stats["api_calls"]) == (1, 1)


def test_a_replay_with_an_older_token_says_so(emulator, schneider_conn):
    """A token source that can only give back a token from before the 401 (here: a fixed one): the replay
    happens, but the error does not claim a freshly issued token."""
    schneider_conn()
    hook = SchneiderHook()
    old = Token(emulator.get_token(), expires_at=time.time() + 3000, lifetime=3600)

    class OnlyTheOldToken:
        """A source that renews, but can only give back a token from before the 401."""

        renews = True

        def get_token(self, *, replacing: Token | None = None) -> Token:
            return old

        def invalidate(self, token: Token) -> float | None:
            return None

    client = SchneiderHttpClient(hook.settings, auth=BearerTokenAuth(OnlyTheOldToken()))
    emulator.add_fault(target="api", kind="status", status=401, times=2)
    with pytest.raises(SchneiderPermissionError) as info:
        client.request("GET", ORDERS, params={"page-size": 1})

    text = str(info.value)
    assert "freshly" not in text and "not issued after that rejection" in text
    assert api_calls(emulator) == [("401", 1), ("401", 1)]
    assert old.access_token not in text


def test_a_replacement_another_process_requested_is_taken(emulator, schneider_conn):
    """Another process of the host saw the same token rejected and renewed before our own 401: its token
    is that token's replacement (``Token.replaces``), so no second request, although it predates our 401."""
    hook = SchneiderHook()
    rejected = manager_of(hook).get_token()  # token 1: in this process's memory and in the host file
    assert emulator.revoke_tokens() == 1
    [child], _ = run_child({"mode": "call"})  # its own 401 on token 1 from the file: it renews (token 2)
    assert child["source"] == "endpoint" and child["token_requests"] == 1

    hook.request("GET", ORDERS, params={"page-size": 1})

    assert api_calls(emulator) == [("401", 1), ("200", 2), ("401", 1), ("200", 2)]
    assert emulator.stats()["token_requests"] == 2
    replacement = manager_of(hook).get_token()
    assert replacement.replaces == token_id(rejected) and replacement.issued_at < time.time()


def test_threads_rejected_together_share_one_new_token(emulator, schneider_conn):
    emulator.configure(latency_ms=200)  # the four calls are in flight together
    hook = SchneiderHook()
    manager_of(hook).get_token()
    assert emulator.revoke_tokens() == 1
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: hook.request("GET", ORDERS, params={"page-size": 1}), range(4)))

    assert all(b["pagination"]["totalNumberOfRecords"] == 250 for b in bodies)
    assert emulator.stats()["token_requests"] == 2
    assert sorted(api_calls(emulator)) == [("200", 2)] * 4 + [("401", 1)] * 4
