"""Control API under ``/_emulator/``: no auth, never counted; tests and benchmarks steer the emulator."""

from __future__ import annotations

import time
from typing import Any

from . import data
from .errors import ApiError
from .routing import Request, Response, Router
from .state import EmulatorState

PREFIX = "/_emulator"


def _bad(message: str) -> ApiError:
    return ApiError(400, "INVALID_FIELD", message)


def _object_body(req: Request) -> dict[str, Any]:
    body = req.json()
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise _bad("The body must be a JSON object")
    return body


def health(state: EmulatorState, req: Request) -> Response:
    return Response(200, {"ok": True})


#: How long ``stats`` waits for in-flight calls to finish, so a client that just got its last answer sees it
#: counted (a call is counted after its answer is written).
SETTLE_SECONDS = 1.0


def stats(state: EmulatorState, req: Request) -> Response:
    deadline = time.monotonic() + SETTLE_SECONDS
    while state.stats.snapshot()["in_flight"] > 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    return Response(200, {**state.stats.snapshot(), "spike_arrests": state.spike_arrest.refused})


def reset(state: EmulatorState, req: Request) -> Response:
    state.reset()
    return Response(200, {"ok": True, "config": state.config.as_dict()})


def reset_counters(state: EmulatorState, req: Request) -> Response:
    state.stats.reset()
    state.spike_arrest.refused = 0  # the count, not the window: the gateway still remembers the last second
    return Response(200, {"ok": True})


def get_config(state: EmulatorState, req: Request) -> Response:
    return Response(200, state.config.as_dict())


def set_config(state: EmulatorState, req: Request) -> Response:
    try:
        config = state.configure(_object_body(req))
    except (ValueError, TypeError) as exc:
        raise _bad(str(exc)) from None
    return Response(200, config.as_dict())


def revoke(state: EmulatorState, req: Request) -> Response:
    token = _object_body(req).get("token")
    if token is not None and not isinstance(token, str):
        raise _bad("'token' must be a string")
    return Response(200, {"revoked": state.tokens.revoke(token)})


def request_log(state: EmulatorState, req: Request) -> Response:
    return Response(200, {"requests": state.stats.request_log()})


def issued_tokens(state: EmulatorState, req: Request) -> Response:
    return Response(200, {"tokens": state.tokens.issued()})


def add_fault(state: EmulatorState, req: Request) -> Response:
    try:
        rule = state.faults.add(_object_body(req))
    except (ValueError, TypeError) as exc:
        raise _bad(str(exc)) from None
    return Response(200, rule.as_dict())


def list_faults(state: EmulatorState, req: Request) -> Response:
    return Response(200, {"faults": state.faults.snapshot()})


def clear_faults(state: EmulatorState, req: Request) -> Response:
    state.faults.clear()
    return Response(200, {"ok": True})


def set_order_status(state: EmulatorState, req: Request) -> Response:
    """``{"status": s}`` sets a status now; ``{"statuses": [...], "every_s": t}`` walks through them."""
    country, number = req.params["country"], req.params["order_number"]
    index = data.order_index(country, number)
    if index is None or index >= state.config.orders_per_country:
        raise ApiError(404, "ORDER_NOT_FOUND", f"Order {number} does not exist in {country}")
    body = _object_body(req)
    statuses = [body["status"]] if "status" in body else body.get("statuses")
    every_s = body.get("every_s", 0.0)
    if not isinstance(statuses, list) or not statuses or not all(isinstance(s, str) and s for s in statuses):
        raise _bad("Send {'status': 'Shipped'} or {'statuses': [...], 'every_s': 2.0}")
    if isinstance(every_s, bool) or not isinstance(every_s, (int, float)) or every_s < 0:
        raise _bad("'every_s' must be a number >= 0")
    state.overrides.schedule(country, number, statuses, float(every_s))
    return Response(200, {"country": country, "orderNumber": number, "status": state.overrides.status(country, number)})


def advance_clock(state: EmulatorState, req: Request) -> Response:
    """``{"advance_s": t}`` moves the clock of token expiry and status schedules forward."""
    seconds = _object_body(req).get("advance_s")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 10**9:
        raise _bad("Send {'advance_s': t} with a number of seconds >= 0")
    return Response(200, {"offset_s": state.clock.advance(float(seconds))})


def clear_order_statuses(state: EmulatorState, req: Request) -> Response:
    state.overrides.clear()
    return Response(200, {"ok": True})


def build_control_router() -> Router:
    router = Router()
    for method, path, handler in (
        ("GET", "/health", health),
        ("GET", "/stats", stats),
        ("POST", "/reset", reset),
        ("POST", "/reset-counters", reset_counters),
        ("GET", "/config", get_config),
        ("POST", "/config", set_config),
        ("POST", "/revoke", revoke),
        ("GET", "/tokens", issued_tokens),
        ("GET", "/requests", request_log),
        ("GET", "/faults", list_faults),
        ("POST", "/faults", add_fault),
        ("DELETE", "/faults", clear_faults),
        ("POST", "/orders/{country}/{order_number}", set_order_status),
        ("DELETE", "/orders", clear_order_statuses),
        ("POST", "/clock", advance_clock),
    ):
        router.add(method, PREFIX + path, handler)
    return router
