"""Stdlib client for the emulator's control API, plus a helper that runs the emulator as a subprocess.

Uses urllib only, so tests and benchmarks can steer the emulator without ``requests`` installed.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

LISTENING = re.compile(r"^schneider-emulator listening on (http://\S+)$")
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding airflow_provider_schneider/


class EmulatorError(RuntimeError):
    """A control call failed, or the emulator process did not come up."""


@dataclass
class Reply:
    """A raw HTTP answer (any status) from :meth:`EmulatorClient.request`."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class EmulatorClient:
    """Talks to a running emulator at ``url`` (e.g. ``http://127.0.0.1:45123``)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy

    # ------------------------------------------------------------ generic HTTP

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Any call (API, token or control); list values in ``params`` repeat the parameter."""
        url = self.url + path + (f"?{urlencode(params, doseq=True)}" if params else "")
        all_headers = dict(headers or {})
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        elif form is not None:
            data = urlencode(form).encode()
            all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(url, data=data, headers=all_headers, method=method.upper())
        try:
            with self._opener.open(req, timeout=timeout or self.timeout) as resp:
                return Reply(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return Reply(err.code, dict(err.headers.items()), err.read())

    def get_token(self, client_id: str = "demo-client", client_secret: str = "demo-secret") -> str:
        """An access token via HTTP Basic client authentication."""
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        reply = self.request(
            "POST",
            "/token",
            form={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        if reply.status != 200:
            raise EmulatorError(f"token request failed: {reply.status} {reply.text}")
        return str(reply.json()["access_token"])

    # ------------------------------------------------------------ control API

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        reply = self.request(method, "/_emulator" + path, json_body=body)
        if reply.status != 200:
            raise EmulatorError(f"{method} /_emulator{path} -> {reply.status}: {reply.text}")
        return reply.json()

    def health(self) -> dict[str, Any]:
        return dict(self._control("GET", "/health"))

    def stats(self) -> dict[str, Any]:
        return dict(self._control("GET", "/stats"))

    def reset(self) -> dict[str, Any]:
        """Counters, faults, tokens, overrides and knobs back to the startup state."""
        return dict(self._control("POST", "/reset"))

    def reset_counters(self) -> dict[str, Any]:
        return dict(self._control("POST", "/reset-counters"))

    def config(self) -> dict[str, Any]:
        return dict(self._control("GET", "/config"))

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs (see ``config.KNOBS``); returns the effective configuration."""
        return dict(self._control("POST", "/config", knobs))

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        """Add a fault rule (target, kind, status, retry_after, delay_s, delta, times, skip, match_query,
        method, code, message, size, interval_s, depth); returns it with its defaults filled in."""
        return dict(self._control("POST", "/faults", rule))

    def faults(self) -> list[dict[str, Any]]:
        return list(self._control("GET", "/faults")["faults"])

    def clear_faults(self) -> None:
        self._control("DELETE", "/faults")

    def revoke_tokens(self, token: str | None = None) -> int:
        """Revoke every issued token (or one); returns how many were revoked."""
        return int(self._control("POST", "/revoke", {"token": token} if token else {})["revoked"])

    def request_log(self) -> list[dict[str, Any]]:
        """The most recent API and token requests, oldest first: ``t`` (epoch seconds on arrival),
        ``channel``, ``method``, ``path``, ``page``, ``outcome``, ``token`` (issue number of the bearer token
        carried, or ``None``) and ``apikey`` (whether an ``apikey`` was sent)."""
        return list(self._control("GET", "/requests")["requests"])

    def issued_tokens(self) -> list[str]:
        """Every access token issued since the last reset, for secret scans of logs and files."""
        return list(self._control("GET", "/tokens")["tokens"])

    def set_order_status(self, country: str, order_number: str, status: str) -> dict[str, Any]:
        return dict(self._control("POST", _order_path(country, order_number), {"status": status}))

    def schedule_order_statuses(
        self, country: str, order_number: str, statuses: list[str], every_s: float
    ) -> dict[str, Any]:
        """Status i applies from now + i * every_s (the last one stays)."""
        body = {"statuses": list(statuses), "every_s": every_s}
        return dict(self._control("POST", _order_path(country, order_number), body))

    def clear_order_statuses(self) -> None:
        self._control("DELETE", "/orders")

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock (token expiry, status schedules) forward; returns the total offset."""
        return float(self._control("POST", "/clock", {"advance_s": seconds})["offset_s"])


def _order_path(country: str, order_number: str) -> str:
    return f"/orders/{quote(country, safe='')}/{quote(order_number, safe='')}"


def _option_args(options: Mapping[str, Any]) -> list[str]:
    """``token_lifetime=8`` -> ``--token-lifetime 8``; ``verbose=True`` -> ``--verbose``."""
    out: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is not False and value is not None:
            out += [flag, str(value)]
    return out


class EmulatorProcess:
    """The emulator in a separate process; ``start`` waits for its "listening" line.

    ``EmulatorProcess(token_lifetime=8)`` or ``EmulatorProcess("--seed", "7")``; host defaults to 127.0.0.1
    and port to 0 (a free port).
    """

    def __init__(self, *args: str, startup_timeout: float = 20.0, python: str | None = None, **options: Any):
        options.setdefault("host", "127.0.0.1")
        options.setdefault("port", 0)
        self.args = [*_option_args(options), *args]
        self.startup_timeout = startup_timeout
        self.python = python or sys.executable
        self.process: subprocess.Popen[str] | None = None
        self.url: str | None = None
        self.returncode: int | None = None

    @property
    def client(self) -> EmulatorClient:
        if self.url is None:
            raise EmulatorError("the emulator process is not running")
        return EmulatorClient(self.url)

    def start(self) -> EmulatorProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [self.python, "-m", "airflow_provider_schneider.emulator", *self.args]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.process.stdout
        assert stdout is not None
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=self.startup_timeout).strip()
        except queue.Empty:
            self.stop()
            raise EmulatorError(f"emulator did not start within {self.startup_timeout} s: {cmd}") from None
        match = LISTENING.match(line)
        if match is None:
            code = self.stop()
            raise EmulatorError(f"emulator failed to start (exit {code}, first line {line!r}): {cmd}")
        self.url = match.group(1)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code (0 on a clean shutdown)."""
        proc, self.process = self.process, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        self.returncode = proc.returncode
        return proc.returncode

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
