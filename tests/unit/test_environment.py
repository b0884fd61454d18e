"""The proxies and CA bundle a call uses come from the environment as requests' ``trust_env`` would read them."""

from __future__ import annotations

from airflow_provider_schneider.client.environment import environment_for


def test_proxies_follow_the_environment_and_its_bypass_list(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert environment_for("https://api.se.com/v1/x", True)[0] == {}
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    proxies, _ = environment_for("https://api.se.com/v1/x", True)
    assert proxies.get("https") == "http://proxy.corp:3128"
    monkeypatch.setenv("NO_PROXY", "api.se.com")
    assert "https" not in environment_for("https://api.se.com/v1/x", True)[0], "a changed variable is seen at once"
    assert environment_for("https://api.qa.se.com/v1/x", True)[0].get("https") == "http://proxy.corp:3128"


def test_the_ca_bundle_of_the_environment_applies_only_when_verification_is_on_by_default(monkeypatch):
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp-ca.pem")
    assert environment_for("https://api.se.com/x", True)[1] == "/etc/corp-ca.pem"
    assert environment_for("https://api.se.com/x", "/my/ca.pem")[1] == "/my/ca.pem"  # the connection's ca_bundle
    assert environment_for("https://api.se.com/x", False)[1] is False
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert environment_for("https://api.se.com/x", True)[1] is True
