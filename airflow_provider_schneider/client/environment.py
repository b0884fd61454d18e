"""What requests' ``trust_env`` reads from the environment, read once per origin instead of on every call.

requests with ``trust_env`` scans the whole process environment twice per call (the proxies, then the proxy
bypass) and stats ``~/.netrc``: a quarter of its per-call cost on a fast gateway. The sessions here turn it
off (:func:`..transport.build_session`) and each call gets the same proxies (``HTTPS_PROXY``, ``NO_PROXY``,
...) and CA bundle (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) requests would have found, cached per origin
and per value of those variables (a changed variable is seen at the next call).
"""

from __future__ import annotations

import functools
import os

import requests

_PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy", "no_proxy")
_CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
#: Every variable whose value changes what a call uses (both spellings of the proxy ones, as requests reads).
_NAMES = (*_PROXY_VARIABLES, *(name.upper() for name in _PROXY_VARIABLES), *_CA_VARIABLES)


def environment_for(url: str, verify: bool | str) -> tuple[dict[str, str], bool | str]:
    """The proxies and the TLS verification requests' ``trust_env`` would use for ``url``."""
    origin = "/".join(url.split("/", 3)[:3])
    proxies, verify = _environment(origin, verify, tuple(os.environ.get(name) for name in _NAMES))
    return dict(proxies), verify  # a copy: the cached one stays as read


@functools.lru_cache(maxsize=64)
def _environment(
    origin: str, verify: bool | str, snapshot: tuple[str | None, ...]
) -> tuple[dict[str, str], bool | str]:
    proxies = requests.utils.get_environ_proxies(origin + "/")
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return proxies, verify
