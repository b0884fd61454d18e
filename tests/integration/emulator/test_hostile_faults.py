"""Hostile fault kinds of the emulator: drip, drip_headers, huge, gzip_bomb, endless, nested, lie_pages."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_schneider.emulator import EmulatorServer
from airflow_provider_schneider.emulator.client import EmulatorClient, EmulatorError

#: The emulator alone, no Airflow involved: the lowest-version run skips it.
pytestmark = pytest.mark.latest_only

ORDERS = "/v1/supply-chain/partner-order-status/orders/FR"
STOCK = "/productstocklevelchecker/1.1/products/LC1D09%2FBD"
KEYED = f"{ORDERS}?apikey=demo-api-key&page-size=1"
CREDENTIALS = {"grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"}
MIB = 1 << 20


def connect(server: EmulatorServer, path: str = KEYED, timeout: float = 5.0) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    conn.request("GET", path)
    return conn


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def settled(emu: EmulatorClient, outcome: str, channel: str = "api") -> Callable[[], bool]:
    """True once the emulator counted the request with ``outcome`` (i.e. its handler finished)."""
    key = "api_calls_by_status" if channel == "api" else "token_requests_by_status"

    def check() -> bool:
        stats: dict[str, Any] = emu.stats()
        return bool(stats["in_flight"] == 0 and stats[key].get(outcome) == 1)

    return check


# ------------------------------------------------------------------ drip


def test_drip_sends_headers_then_one_byte_per_interval(emu: EmulatorClient, server: EmulatorServer) -> None:
    normal = emu.request("GET", ORDERS, params={"apikey": "demo-api-key", "page-size": "1"}).body
    emu.add_fault(target="api", kind="drip", interval_s=0.2)
    whole_body = 0.2 * len(normal)  # what the drip of every byte takes (tens of seconds)
    assert whole_body > 20
    start = time.monotonic()
    conn = connect(server, timeout=whole_body)
    resp = conn.getresponse()
    headers_after = time.monotonic() - start
    assert resp.status == 200 and resp.headers["Content-Length"] == str(len(normal))
    assert resp.read(3) == normal[:3]
    three_bytes_after = time.monotonic() - start
    # Bounds that only a wrong drip crosses: the headers come before the body (not after it), three bytes
    # take at least two intervals and far less than the whole body.
    assert headers_after < whole_body / 2
    assert 0.4 <= three_bytes_after < whole_body / 2
    conn.close()
    assert wait_for(settled(emu, "drip"))  # the dripping thread noticed the client leaving
    assert emu.stats()["api_calls_by_status"] == {"200": 1, "drip": 1}


def test_drip_on_token_channel_delivers_the_whole_answer(emu: EmulatorClient) -> None:
    emu.add_fault(target="token", kind="drip", interval_s=0.001)
    reply = emu.request("POST", "/token", form=CREDENTIALS)
    assert reply.status == 200 and emu.request("GET", ORDERS, token=reply.json()["access_token"]).status == 200
    assert emu.stats()["token_requests_by_status"] == {"drip": 1}


def test_drip_headers_never_completes_the_headers(emu: EmulatorClient, server: EmulatorServer) -> None:
    emu.add_fault(target="api", kind="drip_headers", interval_s=0.05, delay_s=0.6)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(f"GET {KEYED} HTTP/1.1\r\nHost: emulator\r\n\r\n".encode())
        received = b""
        start = time.monotonic()
        while chunk := sock.recv(4096):
            received += chunk
        elapsed = time.monotonic() - start
    assert received.startswith(b"HTTP/1.1 200 OK\r\nServer: ") and b"\r\n\r\n" not in received
    assert 0.5 <= elapsed < 20  # closed at the delay_s cap (0.6 s), not dripping on
    assert 1 <= len(received) - len("HTTP/1.1 200 OK\r\n") <= 13  # one byte per 0.05 s, for 0.6 s
    assert wait_for(settled(emu, "drip_headers"))


def test_drip_ends_when_the_server_stops() -> None:
    with EmulatorServer(port=0) as srv:
        srv.client.add_fault(target="api", kind="drip", interval_s=0.5)
        conn = connect(srv)
        resp = conn.getresponse()
        assert resp.status == 200
        start = time.monotonic()
        srv.stop()
        with pytest.raises(http.client.IncompleteRead):
            resp.read()
        whole_body = 0.5 * int(resp.headers["Content-Length"])  # what the drip would take left alone
        assert whole_body > 40 and time.monotonic() - start < whole_body / 4


# ------------------------------------------------------------------ size attacks


def test_huge_body(emu: EmulatorClient, server: EmulatorServer) -> None:
    size = 10_000_000
    emu.add_fault(target="api", kind="huge", size=size)
    resp = connect(server).getresponse()
    assert resp.headers["Content-Type"] == "application/json" and resp.headers["Content-Length"] == str(size)
    body = resp.read()
    assert len(body) == size
    document = json.loads(body)
    assert document["orderList"] == [] and set(document["padding"]) == {"x"}
    assert emu.stats()["api_calls_by_status"] == {"huge": 1}


def test_huge_body_stops_when_the_client_leaves(emu: EmulatorClient, server: EmulatorServer) -> None:
    emu.add_fault(target="api", kind="huge", size=50 * (1 << 30))
    conn = connect(server)
    resp = conn.getresponse()
    assert resp.headers["Content-Length"] == str(50 * (1 << 30))
    assert len(resp.read(MIB)) == MIB
    conn.close()
    assert wait_for(settled(emu, "huge"))


def test_gzip_bomb(emu: EmulatorClient, server: EmulatorServer) -> None:
    size = 5 * MIB + 3
    emu.add_fault(target="api", kind="gzip_bomb", size=size, times=2)
    for _ in range(2):  # the second answer comes from the cache, byte for byte
        resp = connect(server).getresponse()
        assert resp.headers["Content-Encoding"] == "gzip"
        compressed = resp.read()
        assert len(compressed) == int(resp.headers["Content-Length"]) < size // 500
        plain = gzip.decompress(compressed)
        assert len(plain) == size and json.loads(plain)["orderList"] == []
    assert emu.stats()["api_calls_by_status"] == {"gzip_bomb": 2}


def test_endless_body_until_the_client_leaves(emu: EmulatorClient, server: EmulatorServer) -> None:
    emu.add_fault(target="api", kind="endless")
    conn = connect(server)
    resp = conn.getresponse()
    assert resp.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in resp.headers
    assert resp.read(MIB).startswith(b'{"orderList":[]')
    conn.close()
    assert wait_for(settled(emu, "endless"))


def test_endless_body_stops_at_its_cap(emu: EmulatorClient, server: EmulatorServer) -> None:
    emu.add_fault(target="api", kind="endless", delay_s=0.3)
    conn = connect(server)
    assert conn.getresponse().status == 200  # then read nothing: the emulator's writes block
    assert wait_for(settled(emu, "endless"), timeout=2.0)
    conn.close()


def test_nested(emu: EmulatorClient, server: EmulatorServer) -> None:
    emu.add_fault(target="api", kind="nested", depth=1000)
    emu.add_fault(target="api", kind="nested", depth=50)
    assert connect(server).getresponse().read() == b"[" * 1000 + b"]" * 1000
    shallow = json.loads(connect(server).getresponse().read())
    for _ in range(49):
        assert len(shallow) == 1
        shallow = shallow[0]
    assert shallow == []
    assert emu.stats()["api_calls_by_status"] == {"200": 2}


def test_lie_pages_on_every_page(emu: EmulatorClient) -> None:
    rule = emu.add_fault(target=ORDERS, kind="lie_pages", times=-1)
    token = emu.get_token()
    for page in (1, 2, 3, 9999):
        body = emu.request("GET", ORDERS, params={"page": page}, token=token).json()
        assert body == {
            "orderList": [],
            "pagination": {"totalNumberOfRecords": 0, "pageNumber": page, "totalNumberOfPages": 1_000_000_000},
        }
    assert emu.request("GET", STOCK, token=token).json()["stockLevels"]  # other paths are not targeted
    stats = emu.stats()
    assert stats["faults_applied"] == {rule["id"]: 4}
    assert stats["api_calls_by_status"] == {"200": 5} and stats["unauthorized"] == 0
    assert [r["outcome"] for r in emu.request_log() if r["channel"] == "api"] == ["200"] * 5


# ------------------------------------------------------------------ rule validation


def test_hostile_rule_defaults_and_bounds(emu: EmulatorClient) -> None:
    assert emu.add_fault(target="api", kind="drip")["interval_s"] == 3.0
    assert emu.add_fault(target="api", kind="drip")["delay_s"] == 600.0
    assert emu.add_fault(target="api", kind="huge")["size"] == 2 * (1 << 30)
    assert emu.add_fault(target="api", kind="gzip_bomb")["size"] == 2 * (1 << 30)
    assert emu.add_fault(target="api", kind="endless")["delay_s"] == 60.0
    assert emu.add_fault(target="api", kind="nested")["depth"] == 100_000
    for bad in (
        {"kind": "status", "status": 500, "size": 10},
        {"kind": "huge", "size": 10},
        {"kind": "huge", "size": "big"},
        {"kind": "gzip_bomb", "size": 1 << 40},
        {"kind": "drip", "interval_s": 0},
        {"kind": "drip", "depth": 3},
        {"kind": "endless", "delay_s": 7200},
        {"kind": "nested", "depth": 0},
    ):
        with pytest.raises(EmulatorError, match="400"):
            emu.add_fault(target="api", **bad)
