"""Connection -> settings: every way a connection arrives, and every bad input failing clearly."""

from __future__ import annotations

import json

import pytest

from airflow_provider_schneider.config.fields import ENVIRONMENTS, TOKEN_CLUSTER_LEASE_ENV, TOKEN_CLUSTER_SETTLE_ENV
from airflow_provider_schneider.config.settings import settings_from_connection
from airflow_provider_schneider.exceptions import SchneiderConfigError

SECRET = "s3cr3t-Value-Never-Printed"


def make_conn(conn_id: str = "sch_test", **kwargs):
    from airflow.sdk import Connection

    kwargs.setdefault("conn_type", "schneider")
    kwargs.setdefault("login", "client-1")
    kwargs.setdefault("password", SECRET)
    extra = kwargs.pop("extra", None)
    return Connection(conn_id=conn_id, extra=json.dumps(extra) if extra is not None else None, **kwargs)


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_environment_sets_token_url_and_host(environment):
    settings = settings_from_connection(make_conn(extra={"environment": environment}))
    assert (settings.token_url, settings.api_base_url) == ENVIRONMENTS[environment]


def test_defaults_are_production_basic_auth_all_tiers():
    settings = settings_from_connection(make_conn())
    assert settings.environment == "production"
    assert settings.token_url == "https://api.se.com/token"
    assert settings.api_base_url == "https://api.se.com"
    assert settings.client_auth == "basic"
    assert settings.token_cache == ("memory", "file", "variable")
    assert settings.verify is True
    assert (settings.connect_timeout, settings.timeout) == (10.0, 60.0)
    assert settings.max_concurrency == 4


def test_host_overrides_environment_and_derives_token_url():
    settings = settings_from_connection(make_conn(host="http://127.0.0.1:8080/", extra={"environment": "qa"}))
    assert settings.api_base_url == "http://127.0.0.1:8080"
    assert settings.token_url == "http://127.0.0.1:8080/token"


def test_token_url_override_and_string_numbers_from_ui_form():
    settings = settings_from_connection(
        make_conn(
            extra={
                "extra__schneider__token_url": "https://sso.example.com/oauth/token",
                "timeout": "12.5",
                "max_concurrency": "8",
                "client_auth": "BODY",
                "token_cache": "memory, file",
                "verify_ssl": "true",
            }
        )
    )
    assert settings.token_url == "https://sso.example.com/oauth/token"
    assert settings.timeout == 12.5
    assert settings.max_concurrency == 8
    assert settings.client_auth == "body"
    assert settings.token_cache == ("memory", "file")


def test_uri_form_with_scheme_in_schema_field():
    from airflow.sdk import Connection

    conn = Connection.from_json(
        json.dumps({"conn_type": "schneider", "host": "localhost", "port": 9999, "schema": "http", "login": "a"}),
        conn_id="x",
    )
    conn.password = SECRET
    assert settings_from_connection(conn).api_base_url == "http://localhost:9999"


def test_env_var_uri_and_json_forms_read_by_the_hook(monkeypatch):
    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_SCH_URI",
        f"schneider://client-1:{SECRET}@127.0.0.1:8081/http?environment=qa&scope=all&client_auth=body",
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SCH_JSON",
        json.dumps(
            {"conn_type": "schneider", "login": "client-1", "password": SECRET, "extra": {"environment": "preprod"}}
        ),
    )
    uri = SchneiderHook("sch_uri").settings
    assert (uri.api_base_url, uri.token_url, uri.scope, uri.client_auth) == (
        "http://127.0.0.1:8081",
        "http://127.0.0.1:8081/token",
        "all",
        "body",
    )
    assert uri.client_secret == SECRET
    as_json = SchneiderHook("sch_json").settings
    assert as_json.token_url == "https://api.preprod.se.com/token"


def test_api_key_alone_is_enough():
    settings = settings_from_connection(make_conn(login=None, password=None, extra={"api_key": "k" * 20}))
    assert settings.uses_api_key


BAD_INPUTS = [
    ({"extra": {"environment": "staging"}}, "environment"),
    ({"password": None}, "password"),
    ({"login": None}, "login"),
    ({"extra": {"timeout": "ten"}}, "timeout"),
    ({"extra": {"connect_timeout": -1}}, "connect_timeout"),
    ({"host": "http://api.example.com"}, "host"),
    ({"extra": {"token_url": "http://10.1.2.3/token"}}, "token_url"),
    ({"extra": {"token_url": "ftp://x/token"}}, "token_url"),
    ({"extra": {"client_auth": "digest"}}, "client_auth"),
    ({"extra": {"max_concurrency": 11}}, "max_concurrency"),
    ({"extra": {"max_concurrency": "2.5"}}, "max_concurrency"),
    ({"extra": {"token_cache": "memory,redis"}}, "token_cache"),
    ({"extra": {"verify_ssl": "maybe"}}, "verify_ssl"),
    ({"extra": {"ca_bundle": "/nonexistent/ca.pem"}}, "ca_bundle"),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_INPUTS, ids=[f for _, f in BAD_INPUTS])
def test_bad_input_names_connection_and_field_never_the_secret(kwargs, field):
    with pytest.raises(SchneiderConfigError) as info:
        settings_from_connection(make_conn("my_conn", **kwargs))
    text = str(info.value)
    assert "my_conn" in text
    assert f"'{field}'" in text
    assert SECRET not in text


def test_settings_repr_hides_secrets():
    settings = settings_from_connection(make_conn(extra={"api_key": "APIKEY-should-not-show"}))
    assert SECRET not in repr(settings)
    assert "APIKEY-should-not-show" not in repr(settings)


def test_connection_type_registered_with_form_fields():
    """Airflow's providers machinery sees our connection type, its hook and its custom form fields."""
    import airflow
    from airflow.providers_manager import ProvidersManager
    from packaging.version import Version

    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    relabeling = {"login": "Client ID", "password": "Client secret", "host": "API base URL (optional)"}
    manager = ProvidersManager()
    hook_info = manager.hooks.get("schneider")
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_provider_schneider.hooks.schneider.SchneiderHook"
    assert hook_info.connection_id_attribute_name == "schneider_conn_id"
    assert SchneiderHook.get_ui_field_behaviour()["relabeling"] == relabeling  # read by Airflow < 3.2
    if Version(airflow.__version__) < Version("3.2"):
        return  # 3.1 builds the form from the hook methods, and only with Flask-AppBuilder installed
    widgets = manager.connection_form_widgets
    assert widgets["extra__schneider__environment"].field["schema"]["enum"][-1] == "production"
    assert widgets["extra__schneider__api_key"].is_sensitive
    assert manager.field_behaviours["schneider"]["relabeling"] == relabeling


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"extra": {"max_concurrency": "inf"}}, "max_concurrency", "finite"),
        ({"extra": {"retry_max_attempts": "inf"}}, "retry_max_attempts", "finite"),
        ({"extra": {"page_size": 1e300}}, "page_size", "<= 10000"),
        ({"extra": {"timeout": "inf"}}, "timeout", "finite"),
        ({"extra": {"timeout": "nan"}}, "timeout", "finite"),
        ({"extra": {"attempt_timeout": "-1"}}, "attempt_timeout", ">= 0.001"),
        ({"extra": {"token_refresh_spread": 5}}, "token_refresh_spread", "<= 1"),
        ({"extra": {"max_response_bytes": "2048.5"}}, "max_response_bytes", "whole number"),
        ({"extra": {"token_cluster_settle": 0.01}}, "token_cluster_settle", ">= 0.05"),
        ({"extra": {"token_cluster_settle": "11"}}, "token_cluster_settle", "<= 10"),
        ({"extra": {"token_cluster_settle": "nan"}}, "token_cluster_settle", "finite"),
        ({"extra": {"token_cluster_lease": "maybe"}}, "token_cluster_lease", "true or false"),
        ({"host": "api.example.com", "port": 99999}, "port", "1..65535"),
        ({"host": "api.example.com", "port": "abc"}, "port", "whole number"),
        ({"host": "api.example.com", "port": -1}, "port", "1..65535"),
        ({"host": "https://api.example.com:99999"}, "host", "bad port"),
        ({"host": "https://api.example.com/api?x=1#frag"}, "host", "query string or fragment"),
        ({"host": "https://api.example.com/api?"}, "host", "query string or fragment"),
        ({"extra": {"token_url": "https://sso.example.com/token#x"}}, "token_url", "query string or fragment"),
        ({"host": f"ftp://user:{SECRET}@files.example.com"}, "host", "credentials"),
        ({"host": f"https://user:{SECRET}@api.example.com"}, "host", "credentials"),
    ],
)
def test_hostile_connection_input_is_a_clear_error(kwargs, field, problem):
    with pytest.raises(SchneiderConfigError) as info:
        settings_from_connection(make_conn(**kwargs))
    text = str(info.value)
    assert "'sch_test'" in text and f"'{field}'" in text and problem in text
    assert SECRET not in text


def test_attempt_deadline_defaults_from_the_timeouts_and_can_be_set():
    derived = settings_from_connection(make_conn(extra={"timeout": 5, "connect_timeout": 2}))
    assert derived.attempt_timeout == 12
    assert settings_from_connection(make_conn(extra={"attempt_timeout": "30"})).attempt_timeout == 30.0


@pytest.fixture
def no_cluster_env(monkeypatch):
    monkeypatch.delenv(TOKEN_CLUSTER_LEASE_ENV, raising=False)
    monkeypatch.delenv(TOKEN_CLUSTER_SETTLE_ENV, raising=False)
    return monkeypatch


def test_cluster_lease_fields_default_to_on_and_half_a_second(no_cluster_env):
    settings = settings_from_connection(make_conn())
    assert (settings.token_cluster_lease, settings.token_cluster_settle) == (True, 0.5)
    form = settings_from_connection(
        make_conn(extra={"extra__schneider__token_cluster_lease": "false", "token_cluster_settle": "2"})
    )
    assert (form.token_cluster_lease, form.token_cluster_settle) == (False, 2.0)
    assert settings_from_connection(make_conn(extra={"token_cluster_lease": False})).token_cluster_lease is False


def test_cluster_lease_precedence_is_field_then_environment_then_default(no_cluster_env):
    no_cluster_env.setenv(TOKEN_CLUSTER_LEASE_ENV, "off")
    no_cluster_env.setenv(TOKEN_CLUSTER_SETTLE_ENV, "2.5")
    from_env = settings_from_connection(make_conn(extra={"token_cluster_lease": "", "token_cluster_settle": " "}))
    assert (from_env.token_cluster_lease, from_env.token_cluster_settle) == (False, 2.5)
    field = settings_from_connection(make_conn(extra={"token_cluster_lease": "true", "token_cluster_settle": 0.2}))
    assert (field.token_cluster_lease, field.token_cluster_settle) == (True, 0.2)


@pytest.mark.parametrize(
    ("lease", "settle", "expected"),
    [
        ("on", "1e9", (True, 10.0)),  # out of bounds: clamped, not an error
        ("garbage", "0", (True, 0.05)),  # only 0/false/no/off turns the lease off
        ("0", "nan", (False, 0.5)),  # not finite: the default
        ("NO", "half", (False, 0.5)),  # not a number: the default
        ("", "", (True, 0.5)),  # empty: as if unset
    ],
)
def test_cluster_lease_environment_is_read_leniently(no_cluster_env, lease, settle, expected):
    """A worker-wide variable never fails a task (as before the fields existed); a connection field would."""
    no_cluster_env.setenv(TOKEN_CLUSTER_LEASE_ENV, lease)
    no_cluster_env.setenv(TOKEN_CLUSTER_SETTLE_ENV, settle)
    settings = settings_from_connection(make_conn())
    assert (settings.token_cluster_lease, settings.token_cluster_settle) == expected


def test_cluster_lease_fields_are_in_the_form_with_their_environment_fallback():
    from airflow_provider_schneider.get_provider_info import CONN_FIELDS

    lease, settle = CONN_FIELDS["token_cluster_lease"], CONN_FIELDS["token_cluster_settle"]
    # Default / on / off, not a switch: a switch's saved value would always override the variable.
    assert lease["schema"] == {
        "type": ["string", "null"],
        "enum": [None, "true", "false"],
        "values_display": {
            "null": f"on (default; ${TOKEN_CLUSTER_LEASE_ENV} overrides)",
            "true": "on",
            "false": "off",
        },
    }
    assert (settle["schema"]["minimum"], settle["schema"]["maximum"]) == (0.05, 10)
    assert f"Empty = ${TOKEN_CLUSTER_LEASE_ENV} if set, else true." in lease["description"]
    assert f"Empty = ${TOKEN_CLUSTER_SETTLE_ENV} if set, else 0.5." in settle["description"]


def test_saved_form_fields_carry_no_default():
    """An empty form field means "the provider's default": no literal is frozen into a saved connection. The one
    exception is a switch (a boolean without an environment fallback): there is no empty switch, so it starts at
    its default instead of showing "off"."""
    from airflow_provider_schneider.get_provider_info import CONN_FIELDS

    assert {name: spec["schema"]["default"] for name, spec in CONN_FIELDS.items() if "default" in spec["schema"]} == {
        "verify_ssl": True
    }
    assert CONN_FIELDS["verify_ssl"]["description"] == "Keep on in production. Default: on."
    assert "Empty = 60." in CONN_FIELDS["timeout"]["description"]
    assert {"token_refresh_spread", "token_wait_timeout", "retry_backoff_initial", "retry_backoff_max"} <= set(
        CONN_FIELDS
    )


def test_docs_connection_table_is_generated_from_the_field_declarations():
    from airflow_provider_schneider.config.fields import markdown_table
    from tests.conftest import REPO

    text = (REPO / "docs" / "connection.md").read_text()
    section = text.split("<!-- connection-fields:start -->\n", 1)[1].split("\n<!-- connection-fields:end -->", 1)[0]
    assert section == markdown_table(), (
        "docs/connection.md is stale: paste the output of python -c 'from airflow_provider_schneider."
        "config.fields import markdown_table; print(markdown_table())' between its markers"
    )


# -- what the connection form shows and saves ------------------------------------------------------------


def hook_meta_extra_fields() -> dict:
    """The schneider form's extra fields exactly as the API server sends them to the UI (masking included)."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "schneider"]
    return dict(meta.extra_fields or {})


def test_form_switches_start_at_their_effective_default():
    """Airflow (3.2+) sends the UI a conn-field's schema default as the field's value: Verify TLS shows on. No
    field Airflow masks (a key containing "token", "secret", ...) has one: the form would save the mask, '***'."""
    import airflow
    from packaging.version import Version

    if Version(airflow.__version__) < Version("3.2"):
        pytest.skip("3.1 builds the form from the hook's WTForms widgets: see the next test")
    fields = hook_meta_extra_fields()
    assert fields["verify_ssl"]["value"] is True
    assert fields["verify_ssl"]["schema"]["type"] == ["boolean", "null"]
    assert fields["token_cluster_lease"]["value"] is None  # "default: ... else on", never '***'
    assert {name for name, spec in fields.items() if spec["value"] is not None} == {"verify_ssl"}
    assert not [name for name, spec in fields.items() if spec["value"] == "***"]


def test_form_widgets_for_airflow_3_1_start_at_their_default(monkeypatch):
    """The WTForms widgets (Airflow < 3.2), through the FAB-less stand-ins Airflow's API server itself uses."""
    import sys
    from unittest import mock

    hook_meta = pytest.importorskip("airflow.api_fastapi.core_api.services.ui.connections").HookMetaService
    stand_ins = {
        "wtforms": {
            "StringField": hook_meta.MockStringField,
            "IntegerField": hook_meta.MockIntegerField,
            "PasswordField": hook_meta.MockPasswordField,
            "BooleanField": hook_meta.MockBooleanField,
        },
        "wtforms.validators": {"Optional": hook_meta.MockOptional, "any_of": hook_meta.MockEnum},
        "flask_babel": {"lazy_gettext": str},
        "flask_appbuilder": {},
        "flask_appbuilder.fieldwidgets": {},
    }
    for name, attributes in stand_ins.items():
        monkeypatch.setitem(sys.modules, name, mock.MagicMock(**attributes))
    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    widgets = {name: field.param.dump() for name, field in SchneiderHook.get_connection_form_widgets().items()}
    assert widgets["verify_ssl"]["value"] is True
    assert widgets["verify_ssl"]["schema"]["type"] == ["boolean", "null"]
    lease = widgets["token_cluster_lease"]
    assert (lease["value"], lease["schema"]["type"], lease["schema"]["enum"]) == (
        None,
        ["string", "null"],
        ["true", "false"],
    )
    assert {name for name, spec in widgets.items() if spec["value"] is not None} == {"verify_ssl"}


def saved_form(**changed) -> dict:
    """An extra as Airflow 3.3's form saves a new connection: every field, each at its form value."""
    from airflow_provider_schneider.get_provider_info import CONN_FIELDS

    return {**{name: spec["schema"].get("default") for name, spec in CONN_FIELDS.items()}, **changed}


def test_a_saved_form_reads_as_the_defaults(no_cluster_env):
    untouched = saved_form()
    assert untouched["verify_ssl"] is True and untouched["token_cluster_lease"] is None
    settings = settings_from_connection(make_conn(extra=untouched))
    assert (settings.verify, settings.token_cluster_lease, settings.timeout) == (True, True, 60.0)
    # The untouched lease choice keeps the worker's variable in charge.
    no_cluster_env.setenv(TOKEN_CLUSTER_LEASE_ENV, "off")
    assert settings_from_connection(make_conn(extra=untouched)).token_cluster_lease is False


def test_a_saved_form_switched_off_reads_as_off(no_cluster_env, tmp_path):
    off = settings_from_connection(make_conn(extra=saved_form(verify_ssl=False, token_cluster_lease="false")))
    assert (off.verify, off.token_cluster_lease) == (False, False)
    no_cluster_env.setenv(TOKEN_CLUSTER_LEASE_ENV, "off")
    on = settings_from_connection(make_conn(extra=saved_form(token_cluster_lease="true")))
    assert on.token_cluster_lease is True  # an explicit choice beats the variable
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not checked here")
    assert settings_from_connection(make_conn(extra=saved_form(ca_bundle=str(bundle)))).verify == str(bundle)
