"""Hostile answers: bodies that drip, never end, are huge, decompress into gigabytes or nest deeply.

Every streaming kind is generated on the fly in small chunks (never held in memory), stops quietly when
the client goes away, and is bounded by the rule's ``delay_s`` cap, so one hostile rule costs the emulator
one handler thread for a bounded time and a few kilobytes.
"""

from __future__ import annotations

import dataclasses
import select
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator

from .faults import FaultRule
from .routing import Request, Response

CHUNK = 64 * 1024
#: A write that makes no progress for this long (the client stopped reading) ends the stream.
STALL_TIMEOUT_S = 30.0
#: ``endless`` stops after this many body bytes even within its time cap.
ENDLESS_MAX_BYTES = 10 * (1 << 30)
#: ``lie_pages`` claims this many pages.
LIE_TOTAL_PAGES = 1_000_000_000

PREFIX = b'{"orderList":[],"pagination":{"totalNumberOfRecords":0,"pageNumber":1,"totalNumberOfPages":1},"padding":"'
SUFFIX = b'"}'
_XS = b"x" * CHUNK
_DRIP_HEADERS = b"Server: schneider-emulator/1.0\r\nContent-Type: application/json\r\nX-Emulator-Drip: "

SendHead = Callable[[int, dict[str, str]], None]


@dataclasses.dataclass
class Stream:
    """What to write: ``raw_head`` (bytes as-is) or a status line and headers, then ``chunks``.

    ``pause_s`` is waited before each chunk; ``complete`` says whether the connection may be kept alive
    once every chunk went out.
    """

    outcome: str
    chunks: Iterable[bytes]
    max_seconds: float
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    raw_head: bytes | None = None
    pause_s: float = 0.0
    complete: bool = True


# ------------------------------------------------------------------ bodies


def padded_slice(start: int, end: int, size: int) -> bytes:
    """Bytes ``start:end`` of the ``size``-byte JSON document ``PREFIX + "xxx..." + SUFFIX``."""
    mid_end = size - len(SUFFIX)
    out = bytearray()
    if start < len(PREFIX):
        out += PREFIX[start : min(end, len(PREFIX))]
    x_from, x_to = max(start, len(PREFIX)), min(end, mid_end)
    while x_to > x_from:
        step = min(x_to - x_from, CHUNK)
        out += _XS[:step]
        x_from += step
    if end > mid_end:
        out += SUFFIX[max(start, mid_end) - mid_end : end - mid_end]
    return bytes(out)


def padded_document(size: int) -> Iterator[bytes]:
    """The padded document in ``CHUNK``-sized pieces."""
    for start in range(0, size, CHUNK):
        yield padded_slice(start, min(start + CHUNK, size), size)


def nested_body(depth: int) -> bytes:
    """``[[[...]]]``: valid JSON, ``depth`` levels deep."""
    return b"[" * depth + b"]" * depth


def shift_total_pages(response: Response, delta: int) -> None:
    """A ``change_total_pages`` fault: the page count of this answer moves by ``delta``."""
    if isinstance(response.body, dict) and isinstance(response.body.get("pagination"), dict):
        pagination = response.body["pagination"]
        pagination["totalNumberOfPages"] = pagination.get("totalNumberOfPages", 0) + delta


def lie_about_pages(response: Response, req: Request) -> None:
    """A paginated answer that claims a billion pages and holds no records."""
    body = response.body
    if not isinstance(body, dict) or not isinstance(body.get("pagination"), dict):
        return
    try:
        page = int(req.first("page") or 1)
    except ValueError:
        page = 1
    for key, value in body.items():
        if isinstance(value, list):
            body[key] = []
    body["pagination"] = {"totalNumberOfRecords": 0, "pageNumber": page, "totalNumberOfPages": LIE_TOTAL_PAGES}


# ------------------------------------------------------------------ gzip bomb

_BOMB_BLOCK = 1 << 20
_bomb_lock = threading.Lock()
_bombs: dict[int, tuple[list[tuple[bytes, int]], bytes]] = {}
_BOMBS_KEPT = 8


def _deflate(data: bytes, final: bool) -> bytes:
    """Raw deflate of one block from a fresh compressor; a full flush ends it on a byte boundary, so the
    pieces of independent blocks concatenate into one valid stream."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)


def gzip_bomb(size: int) -> tuple[list[tuple[bytes, int]], bytes]:
    """Deflate pieces ``(bytes, repeat)`` and the gzip trailer of the padded document of ``size`` bytes.

    Every all-``x`` 1 MiB block compresses to the same ~1 KB, so the pieces are a handful of distinct
    byte strings (about 2 MB on the wire for 2 GiB); built once per size and cached.
    """
    with _bomb_lock:
        cached = _bombs.get(size)
        if cached is not None:
            return cached
        plain = b"x" * _BOMB_BLOCK
        middle = _deflate(plain, final=False)
        pieces: list[tuple[bytes, int]] = []
        crc = 0
        for start in range(0, size, _BOMB_BLOCK):
            end = min(start + _BOMB_BLOCK, size)
            if start >= len(PREFIX) and end <= size - len(SUFFIX):  # a full block of x (the last holds SUFFIX)
                crc = zlib.crc32(plain, crc)
                if pieces and pieces[-1][0] is middle:
                    pieces[-1] = (middle, pieces[-1][1] + 1)
                else:
                    pieces.append((middle, 1))
                continue
            block = padded_slice(start, end, size)
            crc = zlib.crc32(block, crc)
            pieces.append((_deflate(block, final=end == size), 1))
        result = (pieces, struct.pack("<II", crc, size & 0xFFFFFFFF))
        if len(_bombs) >= _BOMBS_KEPT:
            _bombs.pop(next(iter(_bombs)))
        _bombs[size] = result
        return result


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, mtime 0, best compression


def _bomb_chunks(pieces: list[tuple[bytes, int]], trailer: bytes) -> Iterator[bytes]:
    yield _GZIP_HEADER
    for piece, repeat in pieces:
        batch = max(1, CHUNK // len(piece))
        while repeat > 0:
            count = min(batch, repeat)
            yield piece * count
            repeat -= count
    yield trailer


# ------------------------------------------------------------------ streams


def _endless_chunks() -> Iterator[bytes]:
    sent, data = 0, PREFIX + _XS[len(PREFIX) :]
    while sent < ENDLESS_MAX_BYTES:
        yield b"%x\r\n%s\r\n" % (len(data), data)
        sent += len(data)
        data = _XS


def _drip_header_bytes() -> Iterator[bytes]:
    for byte in _DRIP_HEADERS:
        yield bytes((byte,))
    while True:
        yield b"a"


def stream_for(rule: FaultRule, normal: Response | None) -> Stream:
    """The stream of a ``STREAM_KINDS`` rule; ``drip`` needs the ``normal`` answer, the others ignore it."""
    cap, json_type = rule.delay_s, {"Content-Type": "application/json"}
    if rule.kind == "drip":
        assert normal is not None
        payload = normal.payload()
        headers = {"Content-Type": normal.content_type, "Content-Length": str(len(payload)), **normal.headers}
        chunks = (payload[i : i + 1] for i in range(len(payload)))
        return Stream("drip", chunks, cap, normal.status, headers, pause_s=rule.interval_s or 0.0)
    if rule.kind == "drip_headers":
        return Stream(
            "drip_headers",
            _drip_header_bytes(),
            cap,
            raw_head=b"HTTP/1.1 200 OK\r\n",
            pause_s=rule.interval_s or 0.0,
            complete=False,
        )
    size = rule.size or 0
    if rule.kind == "huge":
        return Stream("huge", padded_document(size), cap, headers={**json_type, "Content-Length": str(size)})
    if rule.kind == "gzip_bomb":
        pieces, trailer = gzip_bomb(size)
        length = len(_GZIP_HEADER) + sum(len(p) * n for p, n in pieces) + len(trailer)
        headers = {**json_type, "Content-Encoding": "gzip", "Content-Length": str(length)}
        return Stream("gzip_bomb", _bomb_chunks(pieces, trailer), cap, headers=headers)
    if rule.kind == "endless":
        headers = {**json_type, "Transfer-Encoding": "chunked"}
        return Stream("endless", _endless_chunks(), cap, headers=headers, complete=False)
    raise ValueError(f"not a streaming fault kind: {rule.kind}")


def _peer_closed_within(conn: socket.socket, seconds: float) -> bool:
    """Wait up to ``seconds``; True as soon as the peer closes (or the server shuts the socket down)."""
    if seconds <= 0:
        return False
    readable, _, _ = select.select([conn], [], [], seconds)
    if not readable:
        return False
    try:
        if conn.recv(1, socket.MSG_PEEK) == b"":
            return True
    except OSError:
        return True
    time.sleep(seconds)  # pipelined request bytes, not a close: just wait out the pause
    return False


def send(stream: Stream, conn: socket.socket, write: Callable[[bytes], object], send_head: SendHead) -> bool:
    """Write ``stream``; False when the connection must close (client gone, cap reached, stalled)."""
    deadline = time.monotonic() + stream.max_seconds
    previous_timeout = conn.gettimeout()
    try:
        conn.settimeout(min(STALL_TIMEOUT_S, stream.max_seconds))
        if stream.raw_head is not None:
            write(stream.raw_head)
        else:
            send_head(stream.status, stream.headers)
        for chunk in stream.chunks:
            if stream.pause_s > 0 and _peer_closed_within(conn, min(stream.pause_s, deadline - time.monotonic())):
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            conn.settimeout(min(STALL_TIMEOUT_S, remaining))  # a blocked write ends at the cap too
            write(chunk)
        return stream.complete
    except (ConnectionError, TimeoutError):
        return False
    finally:
        try:
            conn.settimeout(previous_timeout)
        except OSError:
            pass
