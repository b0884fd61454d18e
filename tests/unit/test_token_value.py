"""The token as a value, the token endpoint's answer as bytes in -> Token or error out, and the sealed form
of a cache entry: pure functions, no network, no Airflow process."""

from __future__ import annotations

import json
import logging
import math

import pytest

from airflow_provider_schneider.config.settings import SchneiderSettings
from airflow_provider_schneider.exceptions import SchneiderTokenEndpointError
from airflow_provider_schneider.process import STATE
from airflow_provider_schneider.tokens.endpoint import parse_token_response
from airflow_provider_schneider.tokens.sealing import MAX_ENTRY_BYTES, CacheKey, TokenCipher
from airflow_provider_schneider.tokens.token import DEFAULT_LIFETIME, Token, same_token, token_id
from tests.support.endpoints import APIGEE_TOKEN

NOW = 1_764_672_000.0
URL = "https://api.example.com/token"
KEY = CacheKey(URL, "client-1", "")
ENDPOINT_LOG = "airflow_provider_schneider.tokens.endpoint"


@pytest.fixture(autouse=True)
def clean_state():
    STATE.reset()  # the "said once" warnings start unsaid
    yield
    STATE.reset()


def parse(body: bytes | str | object, max_lifetime: float = 86400.0) -> Token:
    raw = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    return parse_token_response(raw, conn_id="schneider_default", token_url=URL, now=NOW, max_lifetime=max_lifetime)


# -- Token ------------------------------------------------------------------------------------------------------


def test_issued_at_is_expiry_minus_lifetime():
    assert Token("abcd", 5000.0, 3600.0).issued_at == 1400.0


@pytest.mark.parametrize(
    ("now", "leeway", "spread", "fresh"),
    [
        (NOW + 3600 - 301, 300, 0.0, True),
        (NOW + 3600 - 300, 300, 0.0, False),  # the margin is exclusive
        (NOW + 3600 - 451, 300, 0.5, True),
        (NOW + 3600 - 449, 300, 0.5, False),  # the spread stretches the margin
        (NOW + 3600 - 901, 5000, 0.0, True),  # leeway capped at a quarter of the life (900 s)
        (NOW + 3600 - 899, 5000, 0.0, False),
        (NOW + 3600 - 1, 0, 0.9, True),  # no leeway: fresh up to the expiry
        (NOW + 3600, 0, 0.0, False),
    ],
)
def test_is_fresh(now, leeway, spread, fresh):
    assert Token("abcd", NOW + 3600, 3600).is_fresh(leeway, now, spread=spread) is fresh


def test_repr_hides_the_token():
    assert "s3cr3t-value" not in repr(Token("s3cr3t-value", NOW, 3600))


def test_json_round_trip_with_and_without_replaces():
    plain = Token("tok-1", NOW + 3600, 3600)
    assert plain.to_json() == {"access_token": "tok-1", "expires_at": NOW + 3600, "lifetime": 3600}
    assert Token.from_json(json.loads(json.dumps(plain.to_json()))) == plain
    marked = Token("tok-2", NOW + 3600, 3600, replaces=token_id(plain))
    assert Token.from_json(json.loads(json.dumps(marked.to_json()))) == marked


GOOD = {"access_token": "tok", "expires_at": NOW + 3600, "lifetime": 3600}


@pytest.mark.parametrize(
    "entry",
    [
        None,
        "a string",
        42,
        ["tok", NOW, 3600],
        {},
        {k: v for k, v in GOOD.items() if k != "access_token"},
        {k: v for k, v in GOOD.items() if k != "expires_at"},
        {k: v for k, v in GOOD.items() if k != "lifetime"},
        {**GOOD, "access_token": ""},
        {**GOOD, "expires_at": "soon"},
        {**GOOD, "expires_at": None},
        {**GOOD, "expires_at": math.nan},
        {**GOOD, "expires_at": math.inf},
        {**GOOD, "lifetime": 0},
        {**GOOD, "lifetime": -3600},
        {**GOOD, "lifetime": math.inf},
        {**GOOD, "lifetime": [3600]},
    ],
)
def test_malformed_cache_entries_are_rejected(entry):
    assert Token.from_json(entry) is None


@pytest.mark.parametrize("replaces", ["<not an id>", "AB" * 4, "a" * 65, "", 12345, ["ab"]])
def test_a_damaged_replaces_is_dropped(replaces):
    assert Token.from_json({**GOOD, "replaces": replaces}) == Token("tok", NOW + 3600, 3600)


def test_token_id_is_stable_short_and_not_the_token():
    ident = token_id(Token("secret-token", NOW, 3600))
    assert ident == token_id(Token("secret-token", NOW + 99, 60))  # the token decides, not its expiry
    assert ident != token_id(Token("secret-token2", NOW, 3600))
    assert len(ident) == 32 and "secret" not in ident and set(ident) <= set("0123456789abcdef")


def test_same_token():
    assert same_token(Token("a1", NOW, 3600), Token("a1", NOW + 1, 7200))
    assert not same_token(Token("a1", NOW, 3600), Token("a2", NOW, 3600))
    assert not same_token(None, Token("a1", NOW, 3600)) and not same_token(None, None)


# -- parse_token_response --------------------------------------------------------------------------------------

APIGEE = APIGEE_TOKEN  # tests.support.endpoints: the gateway shape, written once


def test_the_apigee_shape_every_value_a_string(caplog):
    with caplog.at_level(logging.WARNING, logger=ENDPOINT_LOG):
        got = parse(APIGEE)
    assert got == Token(APIGEE_TOKEN["access_token"], NOW + 3599, 3599.0)
    assert got.replaces is None
    assert caplog.records == []  # BearerToken is a bearer token: nothing to warn about


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BearerToken", " bearer "])
def test_bearer_spellings_are_accepted_silently(token_type, caplog):
    with caplog.at_level(logging.WARNING, logger=ENDPOINT_LOG):
        assert parse({"access_token": "tok-1", "token_type": token_type, "expires_in": 60}).lifetime == 60
    assert caplog.records == []


def test_a_missing_token_type_and_expires_in_means_the_documented_hour(caplog):
    with caplog.at_level(logging.WARNING, logger=ENDPOINT_LOG):
        got = parse({"access_token": "tok-1"})
    assert got.lifetime == DEFAULT_LIFETIME and got.expires_at == NOW + DEFAULT_LIFETIME
    assert caplog.records == []


def test_another_token_type_is_used_as_bearer_and_warned_about_once(caplog):
    with caplog.at_level(logging.WARNING, logger=ENDPOINT_LOG):
        assert parse({"access_token": "tok-1", "token_type": "mac"}).access_token == "tok-1"
        parse({"access_token": "tok-2", "token_type": "mac"})
    assert [r.getMessage().count("token_type 'mac'") for r in caplog.records] == [1]


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [
        (3599, 3599.0),
        ("3599", 3599.0),
        (" 120 ", 120.0),
        (1799.5, 1799.5),
        ("", DEFAULT_LIFETIME),
        (None, DEFAULT_LIFETIME),
        ("soon", DEFAULT_LIFETIME),
        (True, DEFAULT_LIFETIME),
        (0, DEFAULT_LIFETIME),
        ("-5", DEFAULT_LIFETIME),
        ("NaN", DEFAULT_LIFETIME),
        ("Infinity", DEFAULT_LIFETIME),
        ({"seconds": 60}, DEFAULT_LIFETIME),
        ("1e9", 86400.0),  # absurd: capped to token_max_lifetime
        (31_536_000, 86400.0),  # a year
        # Beyond a float (an int of 400 digits, or a string overflowing to inf): unreadable, so the hour.
        ("1e400", DEFAULT_LIFETIME),
    ],
)
def test_expires_in_shapes(expires_in, lifetime):
    got = parse({"access_token": "tok-1", "expires_in": expires_in})
    assert got.lifetime == lifetime and got.expires_at == NOW + lifetime


def test_an_integer_too_large_for_a_float_is_the_documented_hour():
    got = parse(b'{"access_token": "tok-1", "expires_in": 1' + b"0" * 400 + b"}")
    assert got.lifetime == DEFAULT_LIFETIME


def test_the_cap_is_the_connections_max_lifetime(caplog):
    with caplog.at_level(logging.WARNING, logger=ENDPOINT_LOG):
        assert parse({"access_token": "tok-1", "expires_in": "7200"}, max_lifetime=600).lifetime == 600
    assert "capping it to 600s" in caplog.text


def test_the_access_token_is_stripped_and_extra_fields_ignored():
    got = parse({"access_token": "  tok-1\n", "scope": ["a"], "nested": {"x": [1, 2]}, "expires_in": "60"})
    assert got == Token("tok-1", NOW + 60, 60.0)


def test_expiry_counts_from_when_the_request_left():
    body = json.dumps({"access_token": "tok-1", "expires_in": 100}).encode()
    got = parse_token_response(body, conn_id="c", token_url=URL, now=5000.0)
    assert got.expires_at == 5100.0 and got.issued_at == 5000.0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "an HTML page"),
        (b"  <!DOCTYPE html><html></html>", "an HTML page"),
        (b"not json at all", "invalid JSON"),
        (b"", "invalid JSON"),
        (b"[" * 100_000, "invalid JSON"),  # absurd nesting is an error, not a RecursionError
        (b'["access_token", "tok"]', "JSON that is not an object"),
        (b'"tok"', "JSON that is not an object"),
        (b"3600", "JSON that is not an object"),
        (b"null", "JSON that is not an object"),
        (b'{"token_type": "Bearer", "expires_in": 3600}', "no 'access_token' (fields: expires_in, token_type)"),
        (b"{}", "no 'access_token' (fields: none)"),
        (b'{"access_token": ""}', "no 'access_token'"),
        (b'{"access_token": "   "}', "no 'access_token'"),
        (b'{"access_token": 12345}', "no 'access_token'"),
        (b'{"access_token": null}', "no 'access_token'"),
    ],
)
def test_answers_that_are_not_a_token(body, says):
    with pytest.raises(SchneiderTokenEndpointError) as raised:
        parse(body)
    message = str(raised.value)
    assert says in message
    assert "Schneider connection 'schneider_default'" in message and URL in message


# -- sealing ----------------------------------------------------------------------------------------------------


def test_seal_and_open_round_trip():
    cipher = TokenCipher("secret-1", KEY)
    original = Token("tok-1", NOW + 3600, 3600, replaces="ab" * 16)
    blob = cipher.seal(original)
    assert blob is not None and "tok-1" not in blob
    assert cipher.open(blob) == original
    assert cipher.open(blob.encode()) == original  # as read from a file
    assert TokenCipher("secret-1", KEY).open(blob) == original  # another process, same secret


def test_another_secret_or_key_cannot_open():
    blob = TokenCipher("secret-1", KEY).seal(Token("tok-1", NOW + 3600, 3600))
    assert TokenCipher("secret-2", KEY).open(blob) is None
    assert TokenCipher("secret-1", CacheKey(URL, "client-2", "")).open(blob) is None
    assert TokenCipher("secret-1", CacheKey(URL, "client-1", "all")).open(blob) is None


@pytest.mark.parametrize("damage", ["truncated", "flipped", "garbage", "empty", "none", "too large", "bytes"])
def test_damaged_entries_open_to_none(damage):
    cipher = TokenCipher("secret-1", KEY)
    blob = cipher.seal(Token("tok-1", NOW + 3600, 3600))
    assert blob is not None
    damaged = {
        "truncated": blob[: len(blob) // 2],
        "flipped": blob[:-5] + ("A" if blob[-5] != "A" else "B") + blob[-4:],
        "garbage": "not-a-fernet-token",
        "empty": "",
        "none": None,
        # Genuine, but larger than any entry the cache writes: not even decrypted.
        "too large": cipher._fernet.encrypt(json.dumps({**GOOD, "pad": "p" * MAX_ENTRY_BYTES}).encode()).decode(),
        "bytes": b"\xff\xfe\x00garbage",
    }[damage]
    assert cipher.open(damaged) is None


def test_a_sealed_valid_entry_that_is_no_token_opens_to_none():
    cipher = TokenCipher("secret-1", KEY)
    foreign = cipher._fernet.encrypt(json.dumps({"access_token": "tok", "lifetime": 3600}).encode())
    assert cipher.open(foreign) is None
    assert cipher.open(cipher._fernet.encrypt(b"not json")) is None


def test_a_token_too_large_to_read_back_is_not_sealed(caplog):
    cipher = TokenCipher("secret-1", KEY)
    with caplog.at_level(logging.WARNING):
        assert cipher.seal(Token("t" * MAX_ENTRY_BYTES, NOW + 3600, 3600)) is None
    assert "too large to cache" in caplog.text


def test_fingerprint_tells_secrets_apart_without_revealing_them():
    one, same, other = TokenCipher("secret-1", KEY), TokenCipher("secret-1", KEY), TokenCipher("secret-2", KEY)
    assert one.fingerprint == same.fingerprint != other.fingerprint
    assert len(one.fingerprint) == 16 and "secret" not in one.fingerprint


def test_cache_key_digest_is_stable():
    # Pinned: a changed digest would orphan every cached token (and lease) of every deployment at upgrade.
    assert CacheKey("https://api.se.com/token", "client-1", "").digest == "3a78f70354003ab6b49cb7f977475162"
    assert CacheKey("https://api.se.com/token", "client-1", "all").digest == "92f8b0f349e52a46d205ec99c103fd04"
    digests = {
        CacheKey(URL, "client-1", "").digest,
        CacheKey(URL + "2", "client-1", "").digest,
        CacheKey(URL, "client-2", "").digest,
        CacheKey(URL, "client-1", "all").digest,
    }
    assert len(digests) == 4


def test_cache_key_for_settings():
    settings = SchneiderSettings(conn_id="c", api_base_url="https://api", token_url=URL, client_id=None, scope=None)
    assert CacheKey.for_settings(settings) == CacheKey(URL, "", "")
    scoped = SchneiderSettings(conn_id="c", api_base_url="https://api", token_url=URL, client_id="id", scope="all")
    assert CacheKey.for_settings(scoped) == CacheKey(URL, "id", "all")
