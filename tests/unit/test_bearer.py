"""The client's auth protocol: ``BearerTokenAuth`` on a fake token source, ``FixedToken`` and ``ApiKeyAuth``.

A request is a real ``requests.PreparedRequest``; the token source is a small fake that records what it was
asked. No network, no Airflow process.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from airflow_provider_schneider.client.auth import ApiKeyAuth
from airflow_provider_schneider.client.responses import ErrorFields, error_fields
from airflow_provider_schneider.redaction import redact
from airflow_provider_schneider.tokens.bearer import BearerTokenAuth, FixedToken
from airflow_provider_schneider.tokens.token import Token, token_id

EXPIRED = ErrorFields(code="keymanagement.service.access_token_expired", user_message="Access Token expired")
NOT_A_REPLACEMENT = "the token was rejected, and so was the replay, whose token was not issued after that rejection"


def fault(faultstring: str, errorcode: str) -> ErrorFields:
    """What the gateway's ``fault`` body turns into (docs section 5)."""
    body = json.dumps({"fault": {"faultstring": faultstring, "detail": {"errorcode": errorcode}}}).encode()
    return error_fields("application/json", body)


def issued(name: str, at: float, replaces: str | None = None) -> Token:
    return Token(f"{name}-{'z' * 16}", at + 3600, 3600, replaces)


class FakeSource:
    """A :class:`~airflow_provider_schneider.tokens.bearer.TokenSource`: hands out ``current``, records what it
    was asked; ``since`` is what ``invalidate`` answers; ``failures`` are raised by the next ``get_token``."""

    def __init__(self, current: Token, *, renews: bool = True, since: float | None = None):
        self.current = current
        self.renews = renews
        self.since = since
        self.asked: list[Token | None] = []
        self.invalidated: list[Token] = []
        self.failures: list[Exception] = []

    def get_token(self, *, replacing: Token | None = None) -> Token:
        self.asked.append(replacing)
        if self.failures:
            raise self.failures.pop(0)
        return self.current

    def invalidate(self, token: Token) -> float | None:
        self.invalidated.append(token)
        return self.since


def send(auth: requests.auth.AuthBase, url: str = "http://x/") -> requests.PreparedRequest:
    return auth(requests.Request("GET", url).prepare())


@pytest.fixture
def first() -> Token:
    return issued("first", time.time() - 600)


def test_the_header_carries_the_current_token(first):
    source = FakeSource(first)
    request = send(BearerTokenAuth(source))
    assert request.headers["Authorization"] == f"Bearer {first.access_token}"
    assert source.asked == [None]


def test_each_attempt_asks_for_the_token_of_the_moment(first):
    source = FakeSource(first)
    auth = BearerTokenAuth(source)
    send(auth)
    renewed = issued("renewed", time.time())
    source.current = renewed  # a routine renewal between two attempts
    assert send(auth).headers["Authorization"] == f"Bearer {renewed.access_token}"
    assert source.asked == [None, None]


def test_a_token_from_a_shared_cache_is_redacted(first):
    send(BearerTokenAuth(FakeSource(first)))
    assert first.access_token not in redact(f"request failed with header Bearer {first.access_token} ...")


def test_a_401_invalidates_and_replays_once_with_a_replacement(first):
    source = FakeSource(first)
    auth = BearerTokenAuth(source)
    send(auth)
    assert auth.after_401(EXPIRED, replayed=False) is None  # replay
    assert source.invalidated == [first]

    replacement = issued("replacement", time.time() + 1)
    source.current = replacement
    assert send(auth).headers["Authorization"] == f"Bearer {replacement.access_token}"
    send(auth)  # the next call is routine again
    assert source.asked == [None, first, None]


def test_a_failed_replay_still_asks_for_the_replacement(first):
    source = FakeSource(first)
    auth = BearerTokenAuth(source)
    send(auth)
    assert auth.after_401(EXPIRED, replayed=False) is None
    source.failures.append(RuntimeError("token endpoint down"))
    with pytest.raises(RuntimeError):
        send(auth)
    send(auth)  # the retry of the replay
    assert source.asked == [None, first, first]


@pytest.mark.parametrize(
    ("replay", "why"),
    [
        ("issued after the 401", "a freshly issued token was rejected"),
        ("marked as its replacement", "a freshly issued token was rejected"),
        ("an older token", NOT_A_REPLACEMENT),
        ("the rejected token again", NOT_A_REPLACEMENT),
    ],
)
def test_the_second_401_says_what_was_rejected(first, replay, why):
    source = FakeSource(first)
    auth = BearerTokenAuth(source)
    send(auth)
    before = time.time()
    assert auth.after_401(EXPIRED, replayed=False) is None
    source.current = {
        "issued after the 401": issued("new", time.time() + 5),
        "marked as its replacement": issued("peer", before - 300, replaces=token_id(first)),
        "an older token": issued("older", before - 300),
        "the rejected token again": first,
    }[replay]
    send(auth)
    assert auth.after_401(EXPIRED, replayed=True) == why
    assert source.invalidated == [first]  # the replay's token is not invalidated: no second replay


def test_the_rejection_counts_from_when_the_source_first_saw_it(first):
    """Another thread saw the same token rejected 100 s ago and renewed: that token counts as a replacement."""
    seen_earlier = time.time() - 100
    source = FakeSource(first, since=seen_earlier)
    auth = BearerTokenAuth(source)
    send(auth)
    assert auth.after_401(EXPIRED, replayed=False) is None
    source.current = issued("renewed-by-another-thread", seen_earlier + 50)
    send(auth)
    assert auth.after_401(EXPIRED, replayed=True) == "a freshly issued token was rejected"


def test_a_fixed_token_is_not_replayed(first):
    source = FixedToken(first)
    auth = BearerTokenAuth(source)
    assert send(auth).headers["Authorization"] == f"Bearer {first.access_token}"
    assert auth.after_401(EXPIRED, replayed=False) == "the token was rejected"
    assert source.get_token(replacing=first) is first and source.invalidate(first) is None
    assert FixedToken.renews is False


def test_a_source_that_cannot_renew_is_not_asked_to_invalidate(first):
    source = FakeSource(first, renews=False)
    auth = BearerTokenAuth(source)
    send(auth)
    assert auth.after_401(EXPIRED, replayed=False) == "the token was rejected"
    send(auth)
    assert source.invalidated == [] and source.asked == [None, None]


def test_a_401_before_any_token_was_sent_is_not_replayed(first):
    source = FakeSource(first)
    assert BearerTokenAuth(source).after_401(EXPIRED, replayed=False) == "the token was rejected"
    assert source.invalidated == []


@pytest.mark.parametrize("replayed", [False, True])
def test_a_gateway_asking_for_an_api_key_is_said_so(first, replayed):
    fields = fault("Invalid ApiKey", "oauth.v2.InvalidApiKey")
    assert fields.api_key_rejected
    source = FakeSource(first)
    auth = BearerTokenAuth(source)
    send(auth)
    why = auth.after_401(fields, replayed=replayed)
    assert why == "the gateway asks for an API key (oauth.v2.InvalidApiKey); set the connection's 'api_key'"
    assert source.invalidated == []
    send(auth)
    assert source.asked == [None, None]  # no replacement asked for


@pytest.mark.parametrize(
    ("faultstring", "errorcode"),
    [
        ("Invalid access token", "oauth.v2.InvalidAccessToken"),
        ("Access Token expired", "keymanagement.service.access_token_expired"),
    ],
)
def test_gateway_token_faults_are_replayed(first, faultstring, errorcode):
    fields = fault(faultstring, errorcode)
    assert fields.token_rejected and not fields.api_key_rejected
    auth = BearerTokenAuth(FakeSource(first))
    send(auth)
    assert auth.after_401(fields, replayed=False) is None


def test_a_401_on_one_thread_does_not_change_another_threads_request(first):
    source = FakeSource(first)
    auth = BearerTokenAuth(source)
    send(auth)
    assert auth.after_401(EXPIRED, replayed=False) is None
    other: list[Token | None] = []

    def other_thread() -> None:
        send(auth)
        other.append(source.asked[-1])
        other.append(auth.after_401(EXPIRED, replayed=True))  # nothing rejected on this thread yet

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(10)
    assert other == [None, NOT_A_REPLACEMENT]
    send(auth)
    assert source.asked[-1] is first  # this thread's replay still asks for the replacement


# -- ApiKeyAuth --------------------------------------------------------------------------------------------------


def test_the_api_key_goes_into_the_query_string():
    request = send(ApiKeyAuth("key-123456"), "http://x/v1/orders?page=2&page-size=10")
    query = parse_qs(urlsplit(request.url).query)
    assert query == {"page": ["2"], "page-size": ["10"], "apikey": ["key-123456"]}
    assert "Authorization" not in request.headers


@pytest.mark.parametrize("replayed", [False, True])
@pytest.mark.parametrize("fields", [EXPIRED, ErrorFields(code="oauth.v2.InvalidApiKey"), ErrorFields()])
def test_an_api_key_401_is_never_replayed(fields, replayed):
    assert ApiKeyAuth("key-123456").after_401(fields, replayed=replayed) == "the API key was rejected"


def test_the_api_key_is_redacted():
    ApiKeyAuth("key-abcdef-987")
    assert "key-abcdef-987" not in redact("GET http://x/?apikey=key-abcdef-987 failed; key was key-abcdef-987")
