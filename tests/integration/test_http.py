"""The HTTP client's promises that the fault matrix does not show row by row: the concurrency cap under a
wider fan-out, the current token on every retry, TLS verification, and secrets kept out of wire debug
output and exception texts. Real HTTP over loopback throughout (the emulator, or a local TLS server)."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import logging
import ssl
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from airflow_provider_schneider.config.settings import settings_from_connection
from airflow_provider_schneider.exceptions import SchneiderApiError, SchneiderConfigError
from airflow_provider_schneider.hooks.schneider import SchneiderHook
from tests.conftest import API_KEY
from tests.support.faults import EMULATOR_KNOBS, FAST_RETRIES, ORDERS_PATH, expected_orders, on_page

pytestmark = pytest.mark.dialects  # a gateway's shapes can break what these test

STOCK = "/productstocklevelchecker/1.1/products/LC1D09%2FBD"


def test_concurrency_cap_holds_under_a_wider_fan_out(emulator, schneider_conn):
    """12 callers at once, cap 3: the emulator never sees more than 3 calls in flight (and does see 3)."""
    emulator.configure(latency_ms=150)
    schneider_conn(max_concurrency=3, token_cache="memory")
    hook = SchneiderHook()
    hook.get_token()
    with ThreadPoolExecutor(max_workers=12) as pool:
        bodies = list(pool.map(lambda _: hook.request("GET", STOCK), range(12)))
    assert all(body["productReference"] == "LC1D09/BD" for body in bodies)
    stats = emulator.stats()
    assert stats["api_calls"] == 12
    assert stats["peak_concurrency"] == 3


def test_concurrency_cap_holds_for_concurrent_pages(emulator, schneider_conn):
    """A paged pull asks for more parallel pages than the connection allows: the cap still wins."""
    emulator.configure(latency_ms=100, orders_per_country=100)
    schneider_conn(max_concurrency=2, page_size=10, token_cache="memory")
    hook = SchneiderHook()
    records = list(hook.iter_records(ORDERS_PATH, records_field="orderList", max_concurrency=8))
    assert len(records) == 100
    stats = emulator.stats()
    assert stats["api_calls"] == 10
    assert stats["peak_concurrency"] == 2


def test_retry_carries_the_current_token_not_the_failed_attempts(emulator, schneider_conn):
    """Page 2 fails with a 503 (backoff at least 0.5 s) while page 3's 401 makes the client refresh the
    token: page 2's retry carries the new token (issue number 2), not a replay of its first header."""
    emulator.configure(**EMULATOR_KNOBS)
    schneider_conn(**{**FAST_RETRIES, "retry_backoff_initial": 1.0, "retry_backoff_max": 1.0})
    emulator.add_fault(**on_page(2, kind="status", status=503))
    emulator.add_fault(**on_page(3, kind="status", status=401))
    records = list(SchneiderHook().iter_records(ORDERS_PATH, records_field="orderList"))
    assert records == expected_orders()
    log = [r for r in emulator.request_log() if r["channel"] == "api"]
    page = {n: [(r["outcome"], r["token"]) for r in log if r["page"] == str(n)] for n in (2, 3)}
    assert page[2] == [("503", 1), ("200", 2)]
    assert page[3] == [("401", 1), ("200", 2)]
    assert emulator.stats()["token_requests"] == 2


def test_netrc_never_replaces_the_bearer_header(emulator, schneider_conn, monkeypatch, tmp_path):
    """requests adds a ``.netrc`` login as Basic auth when a call has no ``auth`` (``trust_env``); the
    provider's calls carry exactly the header it set, so a netrc entry for the host changes nothing."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    schneider_conn(token_cache="memory")
    assert SchneiderHook().request("GET", STOCK)["productReference"] == "LC1D09/BD"
    assert [(r["outcome"], r["token"]) for r in emulator.request_log() if r["channel"] == "api"] == [("200", 1)]


def test_operator_overrides_the_connections_retry_budget(emulator, schneider_conn, tmp_path):
    """``retry_max_attempts`` on the operator wins over the connection's (5): page 2 is tried twice."""
    from airflow_provider_schneider.operators.orders import SchneiderOrderStatusOperator

    emulator.configure(**EMULATOR_KNOBS)
    schneider_conn(**FAST_RETRIES)
    emulator.add_fault(**on_page(2, kind="status", status=503, times=-1))
    out = tmp_path / "out"
    target = out / "orders.jsonl"
    operator = SchneiderOrderStatusOperator(
        task_id="pull", country="FR", retry_max_attempts=2, output_path=f"file://{target}"
    )
    with pytest.raises(SchneiderApiError, match=r"page 2, HTTP 503.*gave up after 2 attempt\(s\)"):
        operator.execute({"run_id": "manual"})
    assert emulator.stats()["api_calls"] == 1 + 2 + 3
    assert not out.exists() or list(out.iterdir()) == []  # nothing written, no partial file


def test_wire_debug_output_never_shows_the_api_key_or_token(emulator, schneider_conn, capfd, caplog):
    """``http.client.HTTPConnection.debuglevel = 1`` (a common recipe) prints every request line and header
    to stdout; the provider's connections stay quiet, and urllib3's DEBUG URL lines are redacted."""
    schneider_conn(api_key=API_KEY, login=None, password=None)
    caplog.set_level(logging.DEBUG)
    previous = http.client.HTTPConnection.debuglevel
    http.client.HTTPConnection.debuglevel = 1
    try:
        SchneiderHook().request("GET", STOCK)
    finally:
        http.client.HTTPConnection.debuglevel = previous
    out, err = capfd.readouterr()
    assert API_KEY not in out + err + caplog.text
    assert "apikey=***" in caplog.text  # urllib3 did log the URL, redacted


def test_transport_error_text_and_traceback_hold_no_api_key(schneider_conn, monkeypatch, caplog):
    """requests puts the full URL (``?apikey=...``) in its connection errors; none of it survives into the
    provider's exception, its traceback, or the retry log lines."""
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    extras = {**FAST_RETRIES, "retry_max_attempts": 2}
    conn = json.loads(schneider_conn(api_key=API_KEY, login=None, password=None, **extras))
    conn["host"] = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AIRFLOW_CONN_SCHNEIDER_DEFAULT", json.dumps(conn))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SchneiderApiError) as info:
        SchneiderHook().request("GET", STOCK, params={"shipTo": "0100012345"})
    text = "".join(traceback.format_exception(info.value))
    assert "connection failed or was reset" in str(info.value)
    assert "gave up after 2 attempt(s)" in str(info.value)
    assert API_KEY not in text + caplog.text
    assert info.value.__context__ is None and info.value.__cause__ is None


# -- TLS --------------------------------------------------------------------------------------------------


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tls_gateway(tmp_path):
    """A loopback HTTPS server with a self-signed certificate that answers ``{"ok": true}``."""
    cert_path, key_path = _self_signed(tmp_path)
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield SimpleNamespace(url=f"https://127.0.0.1:{server.server_address[1]}", ca=str(cert_path), seen=seen)
    server.shutdown()
    server.server_close()


def _use_tls_gateway(monkeypatch, url: str, **extra) -> None:
    conn = {"conn_type": "schneider", "host": url, "extra": {"api_key": API_KEY, **FAST_RETRIES, **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_SCHNEIDER_DEFAULT", json.dumps(conn))


def test_tls_is_verified_by_default_and_a_bad_certificate_is_not_retried(tls_gateway, monkeypatch, caplog):
    _use_tls_gateway(monkeypatch, tls_gateway.url)
    caplog.set_level(logging.INFO)
    with pytest.raises(SchneiderApiError, match="TLS certificate verification failed.*ca_bundle"):
        SchneiderHook().request("GET", "/ping")
    assert tls_gateway.seen == []  # no request got past the handshake
    assert "Retrying" not in caplog.text  # a certificate will not get better by retrying


def test_ca_bundle_makes_a_private_ca_work(tls_gateway, monkeypatch):
    _use_tls_gateway(monkeypatch, tls_gateway.url, ca_bundle=tls_gateway.ca)
    assert SchneiderHook().request("GET", "/ping") == {"ok": True}
    assert tls_gateway.seen == [f"/ping?apikey={API_KEY}"]


@pytest.mark.parametrize(
    ("host", "extra", "ok"),
    [
        ("http://api.se.com", {}, False),
        ("http://10.0.0.8:8080", {}, False),
        ("https://api.se.com", {}, True),
        ("http://127.0.0.1:8080", {}, True),
        ("http://localhost:8080", {}, True),
        ("http://[::1]:8080", {}, True),
        ("https://api.se.com", {"token_url": "http://auth.example.com/token"}, False),
    ],
)
def test_plain_http_only_to_loopback(host, extra, ok):
    conn = SimpleNamespace(
        conn_id="c", host=host, schema=None, port=None, login="id", password="secret", extra_dejson=extra
    )
    if ok:
        assert settings_from_connection(conn).api_base_url == host
    else:
        with pytest.raises(SchneiderConfigError, match="plain http to non-loopback"):
            settings_from_connection(conn)


@pytest.mark.parametrize("pooled", [False, True], ids=["new connection", "pooled connection"])
def test_a_request_cancelled_before_it_is_sent_never_reaches_the_gateway(emulator, pooled):
    """The cancel lands after the attempt's own check, while the request is being prepared (the window in which
    a fan-out's consumer can leave): no request may reach the gateway afterwards, on a new or a kept-alive
    connection. It used to be sent, and counted in the next test's numbers."""
    from airflow_provider_schneider.client.cancellation import CancelScope, PullCancelled, within
    from airflow_provider_schneider.client.transport import build_session, exchange

    url = f"{emulator.url}{ORDERS_PATH}?apikey={API_KEY}"
    limits = {"connect_timeout": 5, "read_timeout": 5, "deadline": 10, "max_bytes": 1 << 20}
    session = build_session(1)
    if pooled:
        assert exchange(session, "GET", url, **limits).status == 200
    scope = CancelScope()

    def cancel_while_preparing(request):
        scope.cancel()
        return request

    with within(scope), pytest.raises(PullCancelled):
        exchange(session, "GET", url, auth=cancel_while_preparing, **limits)
    assert emulator.stats()["api_calls"] == (1 if pooled else 0)
