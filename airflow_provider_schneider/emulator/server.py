"""HTTP plumbing: keep-alive server, request dispatch, latency, fault execution and accounting.

Business answers come from the handler modules; this module decides *how* they go on the wire, including
the deliberately broken ways (reset, truncation, the streams of :mod:`.hostile`) the fault rules ask for.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import auth, faults, hostile, spike
from .config import EmulatorConfig
from .control import PREFIX as CONTROL_PREFIX
from .control import build_control_router
from .errors import ApiError
from .routes import build_api_router
from .routing import Request, Response, Router
from .state import EmulatorState

if TYPE_CHECKING:
    from .client import EmulatorClient

MAX_BODY = 10 * 1024 * 1024
TOKEN_PATH = "/token"


class _HTTPServer(ThreadingHTTPServer):
    """Threaded server that remembers open connections so ``stop`` can close idle keep-alive sockets."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: EmulatorState, verbose: bool) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.verbose = verbose
        self.api_router: Router = build_api_router()
        self.control_router: Router = build_control_router()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._generation_of: dict[socket.socket, int] = {}
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Stamp each connection with the state generation it was accepted in. This runs in the accept
        loop, so connections are stamped in arrival order: one opened before a ``reset`` request keeps the
        old generation even when its handler thread runs late."""
        with self._connections_lock:
            self._generation_of[request] = self.state.generation
        super().process_request(request, client_address)

    def generation_of(self, conn: socket.socket) -> int:
        with self._connections_lock:
            return self._generation_of.get(conn, -1)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client drops its connection (timeouts, resets); report real bugs."""
        if self.verbose or not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)
                self._generation_of.pop(conn, None)

    def close_connections(self) -> None:
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "schneider-emulator/1.0"
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # ------------------------------------------------------------ request intake

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", "The request body is too large")
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        try:
            body = self._read_body()
        except (ApiError, ValueError) as exc:
            self.close_connection = True
            error = exc if isinstance(exc, ApiError) else ApiError(400, "INVALID_FIELD", "Malformed body")
            self._send(Response.from_error(error))
            return
        req = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        if req.path == CONTROL_PREFIX or req.path.startswith(CONTROL_PREFIX + "/"):
            self._send(self._guarded(lambda: self._route(self.server.control_router, req)))
        elif req.path == TOKEN_PATH:
            self._serve(req, "token")
        else:
            self._serve(req, "api")

    # ------------------------------------------------------------ gateway behaviour

    def _serve(self, req: Request, channel: str) -> None:
        """Latency, then at most one fault rule, then auth and the handler; every outcome is counted.

        A complete answer is counted *before* its bytes are written: a client that reads the answer and
        then asks for the stats must find the request counted, however late this thread runs."""
        state = self.server.state
        if self.server.generation_of(self.connection) != state.generation:
            self._refuse_stale()
            return
        arrived, had_apikey = time.time(), "apikey" in req.query  # authentication pops the apikey
        if channel == "api":
            state.stats.api_started()
        counted = False

        def count(outcome: str) -> None:
            nonlocal counted
            if counted:
                return
            counted = True
            if self.server.generation_of(self.connection) == state.generation:  # no reset meanwhile
                if channel == "api":
                    state.stats.api_finished(req.path, outcome)
                else:
                    state.stats.token_finished(outcome)
                state.stats.request_logged(_log_entry(state, req, channel, outcome, arrived, had_apikey))

        try:
            cfg = state.config
            if channel == "api" and not state.spike_arrest.admits(cfg.rate_limit):  # refused before the backend
                count(str(spike.STATUS))
                self._send(Response(spike.STATUS, spike.refusal_body(cfg.rate_limit)))
                return
            latency = cfg.latency_ms if channel == "api" else cfg.token_latency_ms
            if latency > 0:
                time.sleep(latency / 1000)
            if self.server.generation_of(self.connection) != state.generation:  # reset while sleeping
                self._refuse_stale()
                return
            rule = state.faults.take(channel, req.path, req.method, req.query)
            if rule is not None:
                state.stats.fault_applied(rule.id)
                if rule.kind == "delay":
                    time.sleep(rule.delay_s)
            count(self._answer(req, channel, rule, cfg.profile, count))
        finally:
            count("aborted")  # the client vanished (or a bug struck) before the answer was ready

    def _refuse_stale(self) -> None:
        """A connection from before the last reset: answered 503 and closed, touching no counter or fault."""
        self.close_connection = True
        error = ApiError(503, "STALE_CONNECTION", "Connection opened before the emulator was reset")
        response = Response.from_error(error)
        response.headers["Connection"] = "close"
        self._send(response)

    def _answer(
        self, req: Request, channel: str, rule: faults.FaultRule | None, profile: str, count: Callable[[str], None]
    ) -> str:
        """Send the (possibly faulty) answer; returns the status sent, "reset"/"truncate", or the name of a
        streaming kind ("drip", "huge", ...). A complete answer is ``count``-ed just before it is written;
        streams and resets are counted by the caller once they are over."""
        kind = rule.kind if rule is not None else None
        if kind == "reset":
            self._reset_connection()
            return "reset"
        if rule is not None and rule.kind in faults.STREAM_KINDS:
            normal = self._guarded(lambda: self._handle(req, channel)) if rule.kind == "drip" else None
            stream = hostile.stream_for(rule, normal)
            if not hostile.send(stream, self.connection, self.wfile.write, self._send_head):
                self.close_connection = True
            return stream.outcome
        if rule is not None and rule.kind in faults.REPLACING_KINDS:
            response = _fault_response(rule, channel, profile)
        else:
            response = self._guarded(lambda: self._handle(req, channel))
            if rule is not None and rule.kind == "change_total_pages":
                hostile.shift_total_pages(response, rule.delta)
            elif rule is not None and rule.kind == "lie_pages":
                hostile.lie_about_pages(response, req)
        outcome = "truncate" if kind == "truncate" else str(response.status)
        count(outcome)
        self._send(response, truncate=kind == "truncate")
        return outcome

    def _handle(self, req: Request, channel: str) -> Response:
        state = self.server.state
        if channel == "token":
            return auth.token_endpoint(state, req)
        handler, req.params = self.server.api_router.resolve(req.method, req.path)
        auth.authenticate(state, req)
        return handler(state, req)

    def _route(self, router: Router, req: Request) -> Response:
        handler, req.params = router.resolve(req.method, req.path)
        return handler(self.server.state, req)

    def _guarded(self, produce: Callable[[], Response]) -> Response:
        """Turn ApiError into its answer and any bug into a visible 500 instead of a dropped socket."""
        try:
            return produce()
        except ApiError as error:
            return Response.from_error(error)
        except Exception as exc:  # noqa: BLE001 - a handler bug must still produce an HTTP answer
            traceback.print_exc(file=sys.stderr)
            return Response.from_error(ApiError(500, "INTERNAL_ERROR", "Emulator bug", repr(exc)))

    # ------------------------------------------------------------ wire output

    def _send(self, response: Response, truncate: bool = False) -> None:
        payload = response.payload()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload) + (1 if truncate and not payload else 0)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if truncate:
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2] if truncate else payload)

    def _send_head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _reset_connection(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0) and no response at all."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()


def _log_entry(
    state: EmulatorState, req: Request, channel: str, outcome: str, arrived: float, had_apikey: bool
) -> dict[str, Any]:
    """A request as ``GET /_emulator/requests`` reports it; the bearer token appears as its issue number."""
    header = req.headers.get("Authorization") or ""
    token = state.tokens.number(header[7:].strip()) if header[:7].lower() == "bearer " else None
    return {
        "t": arrived,
        "channel": channel,
        "method": req.method,
        "path": req.path,
        "page": req.first("page"),
        "outcome": outcome,
        "token": token,
        "apikey": had_apikey,
    }


def _fault_response(rule: faults.FaultRule, channel: str, profile: str) -> Response:
    if rule.kind == "nested":
        return Response(200, hostile.nested_body(rule.depth or 1))
    if rule.kind == "html":
        status = rule.status or 200
        return Response(status, faults.html_page(status), content_type="text/html; charset=utf-8")
    if rule.kind == "invalid_json":
        return Response(rule.status or 200, faults.INVALID_JSON)
    headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
    return Response(rule.status or 500, faults.status_body(rule, channel, profile), headers)


class EmulatorServer:
    """The emulator in this process: ``start()`` serves from a daemon thread, ``stop()`` shuts it down."""

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        config = config or EmulatorConfig()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.state = EmulatorState(self.config)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    def bind(self) -> None:
        """Bind and listen (connections queue up from here on); ``start`` calls it when needed."""
        if self._httpd is None:
            self._httpd = _HTTPServer((self.config.host, self.config.port), self.state, self.config.verbose)
            self._port = int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not bound yet: call start()")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def client(self) -> EmulatorClient:
        from .client import EmulatorClient

        return EmulatorClient(self.url)

    def start(self) -> EmulatorServer:
        self.bind()
        if self._thread is None:
            assert self._httpd is not None
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"schneider-emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd, self._thread = None, None
        if httpd is None:
            return
        if thread is not None:
            httpd.shutdown()
            thread.join(timeout=5)
        httpd.close_connections()
        httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
