"""``python -m airflow_provider_schneider.emulator --port N`` as a user runs it: a real subprocess, real HTTP.

The documented port is not one of Airflow's; asked for one of Airflow's ports, the emulator warns on stderr
(naming the component and what breaks); a taken port is a clear message and exit status 2.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from airflow_provider_schneider.emulator.__main__ import AIRFLOW_PORTS, DOCUMENTED_PORT, airflow_port_warning
from tests.conftest import CLIENT_ID, CLIENT_SECRET, REPO

EMULATOR = [sys.executable, "-m", "airflow_provider_schneider.emulator"]
LISTENING = re.compile(r"^schneider-emulator listening on (http://127\.0\.0\.1:(\d+))$")
#: Airflow's default ports the subprocess test may hold for a moment, least disruptive first: nothing here
#: runs a Flower, a scheduler health check or a standalone triggerer log server on a fixed port for long.
BRIEFLY_BINDABLE = (5555, 8974, 8794)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextmanager
def emulator(port: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [*EMULATOR, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, then the exit status and everything written to stderr."""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(10)
    assert proc.stderr is not None
    return code, proc.stderr.read()


def get_token(url: str) -> dict:
    form = f"grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}".encode()
    with urllib.request.urlopen(urllib.request.Request(f"{url}/token", data=form), timeout=10) as reply:
        return json.load(reply)


def test_documented_port_serves_quietly_on_a_free_port():
    """The happy path on a free port: the one stdout line, a real token over HTTP, no warning, exit 0."""
    port = free_port()
    with emulator(port) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        match = LISTENING.match(line)
        assert match and int(match.group(2)) == port, line
        assert get_token(match.group(1))["token_type"].lower() == "bearer"
        code, stderr = stop(proc)
    assert code == 0
    assert stderr == ""


def test_documented_port_is_not_an_airflow_port():
    assert DOCUMENTED_PORT == 8765
    assert airflow_port_warning(DOCUMENTED_PORT) is None
    assert DOCUMENTED_PORT not in AIRFLOW_PORTS and DOCUMENTED_PORT not in (8080, 8793, 8794, 8974, 5555, 8125)


def test_api_server_port_warning_names_the_execution_api():
    warning = airflow_port_warning(8080)
    assert warning is not None
    assert "api-server" in warning and "Execution API" in warning and "http://localhost:8080/execution/" in warning
    assert f"--port {DOCUMENTED_PORT}" in warning
    for port, needle in {8793: "worker log server", 8794: "triggerer log server", 5555: "Flower"}.items():
        text = airflow_port_warning(port)
        assert text is not None and needle in text and str(port) in text


def test_an_airflow_port_is_warned_about_on_stderr_before_serving():
    """A real run on one of Airflow's default ports: the warning on stderr, and the emulator still works (the
    user may know what they do). If every candidate is taken here, the run must end in the clear "in use"
    error naming the Airflow component instead."""
    port = next((p for p in BRIEFLY_BINDABLE if port_is_free(p)), BRIEFLY_BINDABLE[0])
    who = AIRFLOW_PORTS[port][0]
    with emulator(port) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if LISTENING.match(line):
            code, stderr = stop(proc)
            assert code == 0
        else:  # someone else holds the port right now
            code = proc.wait(20)
            assert proc.stderr is not None
            stderr = proc.stderr.read()
            assert code == 2 and line == ""
            assert f"port {port} on 127.0.0.1 is already in use (by default {who} listens there)" in stderr
    assert f"warning: port {port} is {who}" in stderr
    assert f"--port {DOCUMENTED_PORT}" in stderr
    assert "Traceback" not in stderr


def test_a_taken_port_is_a_clear_error_and_exit_2():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [*EMULATOR, "--host", "127.0.0.1", "--port", str(port)], capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert f"--port {DOCUMENTED_PORT}" in result.stderr and "--port 0" in result.stderr
    assert "Errno" not in result.stderr and "Traceback" not in result.stderr


DOC_FILES = (
    "README.md",
    "docs/emulator.md",
    "docs/connection.md",
    "docs/own-airflow.md",
    "airflow_provider_schneider/emulator/README.md",
)
#: A fixed emulator port in a doc: on the emulator's command line, or in a connection pointing at it.
EMULATOR_PORT_IN_DOCS = re.compile(
    r"airflow_provider_schneider\.emulator[^\n]*--port (\d+)"
    r"|schneider-emulator listening on http://127\.0\.0\.1:(\d+)"
    r"|\"host\": \"http://127\.0\.0\.1:(\d+)\""
    r"|schneider://[^@\s]+@127\.0\.0\.1:(\d+)"
)


@pytest.mark.parametrize("name", DOC_FILES)
def test_docs_use_the_documented_port(name):
    text = (REPO / name).read_text()
    ports = [int(next(g for g in m.groups() if g)) for m in EMULATOR_PORT_IN_DOCS.finditer(text)]
    assert ports, f"{name} shows no emulator port"
    assert set(ports) == {DOCUMENTED_PORT}, f"{name}: emulator ports {ports}"


def test_no_script_or_dag_pins_the_emulator_to_an_airflow_port():
    for path in [*Path(REPO, "dags").glob("*.py"), *Path(REPO, "scripts").rglob("*.py"), REPO / "Makefile"]:
        for port in EMULATOR_PORT_IN_DOCS.finditer(path.read_text()):
            assert int(next(g for g in port.groups() if g)) not in AIRFLOW_PORTS, path
