"""The ``schneider`` connection form in the real Airflow 3 UI, driven by headless Chromium, and the CLI test.

A fresh AIRFLOW_HOME runs ``airflow api-server`` (SimpleAuthManager, all users admin, ``[core]
test_connection = Enabled``). The browser adds a connection of type ``schneider`` through the form, checks
that the provider's labels render, saves it and presses "Test": the API server's hook then really asks the
emulator for a token and calls an API. Screenshots are kept in ``$SCHNEIDER_TEST_ARTEFACTS`` (default
``/tmp/schneider-test-artefacts``); ``SCHNEIDER_UPDATE_DOCS_SCREENSHOT=1`` also refreshes
``docs/img/connection_form.png`` (shown in docs/connection.md).

Needs the Debian packages ``chromium`` (and ``chromium-driver``) plus ``pip install playwright``; never
``playwright install``: the system Chromium is used. When either is missing the browser test is skipped
with a ``UiTestSkippedWarning`` and a line in pytest's terminal summary (tests/conftest.py), never silently.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from airflow_provider_schneider.config.fields import TOKEN_CLUSTER_LEASE_ENV
from airflow_provider_schneider.get_provider_info import CONN_FIELDS
from tests.conftest import API_KEY, CLIENT_ID, CLIENT_SECRET, REPO, only_profile
from tests.support.ui import CHROMIUM_MISSING, PLAYWRIGHT_MISSING, ApiServer, UiTestSkippedWarning, chromium_path

CHROMIUM = chromium_path()
ORDERS_PATH = "/v1/supply-chain/partner-order-status/orders/FR"
ARTEFACTS = Path(os.environ.get("SCHNEIDER_TEST_ARTEFACTS", Path(tempfile.gettempdir()) / "schneider-test-artefacts"))
DOCS_SCREENSHOT = REPO / "docs" / "img" / "connection_form.png"
CONN_ID = "schneider_ui"
AIRFLOW_VERSION = Version(importlib.metadata.version("apache-airflow"))


# -- browser test -----------------------------------------------------------------------------------------


def skip_visibly(reason: str) -> None:
    """Skip with a warning too: ``make test`` must not pass quietly without its browser test."""
    warnings.warn(reason, UiTestSkippedWarning, stacklevel=2)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory) -> Iterator[ApiServer]:
    if CHROMIUM is None:
        skip_visibly(CHROMIUM_MISSING)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_visibly(PLAYWRIGHT_MISSING)
    with ApiServer(tmp_path_factory.mktemp("ui_airflow_home")) as server:
        yield server


@pytest.fixture
def page(api_server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 900})
            pg.set_default_timeout(20_000)
            yield pg
        finally:
            browser.close()


def work_around_port_zero(page: Any, rewritten: list[dict]) -> None:
    """Airflow <= 3.3.2 UI posts ``port: 0`` for a connection without a port, and the API then refuses the
    test ("host or port ... differs from the stored connection"). apache/airflow#73298 fixes it in the API
    by treating 0 as unset; this applies exactly that normalisation to the browser's request, nothing else.
    """

    def handle(route: Any) -> None:
        body = json.loads(route.request.post_data or "{}")
        if body.get("port") == 0:
            body["port"] = None
            rewritten.append(body)
        route.continue_(post_data=json.dumps(body))

    page.route("**/api/v2/connections/test", handle)


def labels_of(dialog: Any) -> set[str]:
    return {text.replace("*", "").strip() for text in dialog.locator("label").all_inner_texts()}


def open_schneider_form(page: Any, url: str, conn_id: str = CONN_ID) -> Any:
    page.goto(f"{url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(conn_id)
    connection_type = dialog.get_by_label("Connection Type")
    connection_type.fill("schneider")
    page.get_by_role("option", name="Schneider Electric").click()
    return dialog


LEASE_DEFAULT = f"on (default; ${TOKEN_CLUSTER_LEASE_ENV} overrides)"


def verify_tls_switch(dialog: Any) -> Any:
    return dialog.locator("input[name=element_verify_ssl]")


def lease_choice(dialog: Any) -> Any:
    return dialog.locator("#element_token_cluster_lease")


def shown_choice(dialog: Any) -> str:
    """The lease dropdown's visible value (its last line; before it, the select's screen-reader announcement)."""
    return lease_choice(dialog).inner_text().splitlines()[-1]


def save(page: Any, dialog: Any) -> dict[str, Any]:
    """Press Save; the connection the form posted, its extra parsed."""
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/v2/connections")) as request:
        dialog.get_by_role("button", name="Save").click()
    saved = json.loads(request.value.post_data or "{}")
    saved["extra"] = json.loads(saved["extra"])
    return saved


def settings_of(saved: dict[str, Any], monkeypatch: Any) -> Any:
    """What a task would read from the connection the form saved (no worker variable set)."""
    from airflow.sdk import Connection

    from airflow_provider_schneider.config.settings import settings_from_connection

    monkeypatch.delenv(TOKEN_CLUSTER_LEASE_ENV, raising=False)
    conn = Connection(
        conn_id=saved["connection_id"],
        conn_type="schneider",
        host=saved.get("host") or None,
        login=saved.get("login") or None,
        password=saved.get("password") or None,
        extra=json.dumps(saved["extra"]),
    )
    return settings_from_connection(conn)


@pytest.mark.ui
@only_profile("default")  # the form is the same for both dialects; the CLI tests below run both
def test_connection_form_renders_and_test_succeeds(api_server, page, emulator, monkeypatch):
    rewritten: list[dict] = []
    work_around_port_zero(page, rewritten)
    try:
        dialog = open_schneider_form(page, api_server.url)

        # Standard fields: relabelled, secrets masked, unused ones (schema, port, extra) hidden.
        standard = labels_of(dialog)
        assert {"API base URL (optional)", "Client ID", "Client secret"} <= standard, standard
        assert not {"Login", "Password", "Port", "Schema", "Host"} & standard, standard
        assert dialog.get_by_label("Client secret").get_attribute("type") == "password"
        dialog.get_by_label("API base URL (optional)").fill(emulator.url)
        dialog.get_by_label("Client ID").fill(CLIENT_ID)
        dialog.get_by_label("Client secret").fill(CLIENT_SECRET)
        page.screenshot(path=str(ARTEFACTS / "connection_form.png"))
        if os.environ.get("SCHNEIDER_UPDATE_DOCS_SCREENSHOT") == "1":
            DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            dialog.screenshot(path=str(DOCS_SCREENSHOT))

        # Extra fields: every conn-field of get_provider_info with its label; secrets masked.
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
        extra = labels_of(dialog)
        expected = {field["label"] for field in CONN_FIELDS.values()}
        assert expected <= extra, f"missing labels: {sorted(expected - extra)}"
        assert {"Environment", "API key", "Token URL (override)", "Test call path"} <= extra
        assert dialog.locator("[name=element_api_key]").get_attribute("type") == "password"
        dialog.locator("[name=element_test_path]").fill(ORDERS_PATH)
        # A new connection shows each toggle at its effective default: Verify TLS on, the lease "on" unless
        # the workers' variable says otherwise (not an "off" switch while both are on).
        assert verify_tls_switch(dialog).is_checked()
        assert shown_choice(dialog) == LEASE_DEFAULT
        lease_choice(dialog).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTEFACTS / "connection_form_extras.png"))
        dialog.locator("label:has(input[name=element_verify_ssl])").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTEFACTS / "connection_form_verify_tls.png"))

        saved = save(page, dialog)
        # What the form stored: our values, and no '***' placeholders. Airflow masks the value of any extra
        # whose key looks sensitive (contains "token", "secret", ...) when it sends the form its defaults, so
        # a conn-field default on such a key would be saved as the literal '***'.
        extras = saved["extra"]
        masked = sorted(key for key, value in extras.items() if value == "***")
        assert not masked, f"the form saved '***' for {masked}: give these conn-fields no default"
        assert saved["host"] == emulator.url and saved["login"] == CLIENT_ID and extras["test_path"] == ORDERS_PATH
        assert (extras["verify_ssl"], extras["token_cluster_lease"]) == (True, None)
        settings = settings_of(saved, monkeypatch)
        assert (settings.verify, settings.token_cluster_lease) == (True, True)
        # The row whose id cell is exactly ours: the module's other test saves "schneider_ui_off" in the same DB,
        # and a substring filter matched both rows whenever that test ran first.
        row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=CONN_ID, exact=True))
        row.get_by_role("button", name="Test Connection").click()
        outcome = page.get_by_text(re.compile(r"^Test Connection (Successful|Failed)$"))
        outcome.wait_for()
        toast = page.get_by_role("status").filter(has=outcome)
        page.screenshot(path=str(ARTEFACTS / "connection_test_result.png"))
        message = toast.inner_text() if toast.count() else outcome.inner_text()
        assert outcome.inner_text() == "Test Connection Successful", message
    except Exception:
        page.screenshot(path=str(ARTEFACTS / "connection_form_failure.png"))
        print(f"api-server log tail:\n{api_server.log()[-4000:]}")
        raise

    assert f"Token endpoint {emulator.url}/token issued a token" in message
    assert f"GET {ORDERS_PATH} succeeded" in message
    assert CLIENT_SECRET not in message
    stats = emulator.stats()
    assert stats["token_requests_by_status"].get("401") is None and stats["token_requests"] >= 1
    assert stats["api_calls_by_path"] == {ORDERS_PATH: 1}  # the API server really called the emulator
    print(f"UI screenshots in {ARTEFACTS}; port-0 workaround applied: {bool(rewritten)}")


@pytest.mark.ui
def test_connection_form_toggles_switched_off_are_saved_as_off(api_server, page, monkeypatch):
    """Both toggles turned off in the form: saved as explicit false, and a task reads them as off."""
    try:
        dialog = open_schneider_form(page, api_server.url, conn_id="schneider_ui_off")
        dialog.get_by_label("Client ID").fill(CLIENT_ID)
        dialog.get_by_label("Client secret").fill(CLIENT_SECRET)
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
        switch = verify_tls_switch(dialog)
        assert switch.is_checked()
        dialog.locator("label:has(input[name=element_verify_ssl])").click()
        assert not switch.is_checked()
        lease_choice(dialog).click()
        page.get_by_role("option", name="off", exact=True).click()
        assert shown_choice(dialog) == "off"
        lease_choice(dialog).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTEFACTS / "connection_form_toggles_off.png"))
        saved = save(page, dialog)
    except Exception:
        page.screenshot(path=str(ARTEFACTS / "connection_form_toggles_off_failure.png"))
        print(f"api-server log tail:\n{api_server.log()[-4000:]}")
        raise
    assert (saved["extra"]["verify_ssl"], saved["extra"]["token_cluster_lease"]) == (False, "false")
    settings = settings_of(saved, monkeypatch)
    assert (settings.verify, settings.token_cluster_lease) == (False, False)


# -- CLI ---------------------------------------------------------------------------------------------------


def connections_test(conn_id: str = "schneider_default") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    return subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "test", conn_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_connections_test_succeeds(emulator, schneider_conn):
    schneider_conn(test_path=ORDERS_PATH)
    result = connections_test()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connection success!" in result.stdout
    stats = emulator.stats()
    assert stats["token_requests_by_status"].get("200", 0) >= 1
    assert stats["api_calls_by_path"] == {ORDERS_PATH: 1}


def test_cli_connections_test_reports_rejected_credentials(emulator, schneider_conn):
    schneider_conn(password="wrong-secret-value")
    result = connections_test()
    output = result.stdout + result.stderr
    assert "Connection failed!" in output
    assert result.returncode == (0 if AIRFLOW_VERSION < Version("3.2") else 1)  # 3.1's CLI exits 0 regardless
    assert "rejected the client credentials" in output and "HTTP 401" in output
    assert emulator.stats()["token_requests_by_status"] == {"401": 1}  # never retried
    for secret in ("wrong-secret-value", CLIENT_SECRET, API_KEY):
        assert secret not in output
