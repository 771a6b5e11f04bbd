"""Request log and fault queue shared by the CRM stand-ins.

Test stand-in code, not a vendor service. Each stand-in app owns one state
object (``app.config["STATE"]``) that records every request it saw and hands
out faults a test queued, so a test can say "the next call gets a 429" and then
assert exactly what the client sent.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import Flask, Response, g, request

__all__ = ["Fault", "SeenRequest", "StandinState", "install_hooks", "json_response"]


@dataclass
class Fault:
    """One queued misbehaviour: wait ``delay`` seconds, then (if ``status``) fail.

    ``status=None`` with a delay gives a slow but otherwise normal response.
    ``body=None`` means "the vendor's usual error body for that status".
    """

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    path_prefix: str | None = None
    method: str | None = None
    content_type: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


@dataclass
class SeenRequest:
    """What the stand-in received, for assertions (headers keep the sent casing)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    fault: Fault | None = None

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup (HTTP header names are case-insensitive)."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class StandinState:
    """Thread-safe request log plus the fault queue; vendor states extend it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[SeenRequest] = []
        self._faults: list[Fault] = []
        self._closing = threading.Event()

    def queue_fault(
        self,
        status: int | None = None,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        delay: float = 0.0,
        path_prefix: str | None = None,
        method: str | None = None,
        times: int = 1,
        content_type: str | None = None,
    ) -> None:
        """Make the next ``times`` matching requests misbehave.

        Faults are served in the order queued; a request takes the first queued
        fault whose ``path_prefix``/``method`` match it (``None`` matches all).
        ``body`` may be a dict/list (sent as JSON) or str/bytes (sent raw).
        """
        if status is None and delay <= 0:
            raise ValueError("a fault needs a status, a delay, or both")
        for _ in range(times):
            fault = Fault(status, dict(headers or {}), body, delay, path_prefix, method, content_type)
            with self.lock:
                self._faults.append(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self.lock:
            return len(self._faults)

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(method, path):
                    return self._faults.pop(index)
        return None

    def requests_to(self, path_prefix: str = "", method: str | None = None) -> list[SeenRequest]:
        """Requests seen whose path starts with ``path_prefix`` (and method, if given)."""
        with self.lock:
            return [
                seen
                for seen in self.requests
                if seen.path.startswith(path_prefix)
                and (method is None or seen.method == method.upper())
            ]

    def cancel_delays(self) -> None:
        """Release any request sleeping in an injected delay (used on shutdown)."""
        self._closing.set()


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON with raw UTF-8 (not \\u escapes), as the vendors send it."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    response = Response(text, status=status, mimetype="application/json")
    response.headers["Content-Type"] = "application/json;charset=UTF-8"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def fault_to_response(fault: Fault, default_body: Callable[[int], Any]) -> Response:
    """Render a fault with its own body, or the vendor default for its status."""
    assert fault.status is not None
    body = fault.body if fault.body is not None else default_body(fault.status)
    if isinstance(body, (dict, list)):
        response = json_response(body, fault.status)
    else:
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        response = Response(raw, status=fault.status)
        response.headers["Content-Type"] = fault.content_type or "text/plain;charset=UTF-8"
    if fault.content_type and isinstance(body, (dict, list)):
        response.headers["Content-Type"] = fault.content_type
    for key, value in fault.headers.items():
        response.headers[key] = value
    return response


def install_hooks(
    app: Flask,
    state: StandinState,
    *,
    check_auth: Callable[[], Response | None],
    default_error_body: Callable[[int], Any],
) -> None:
    """Record each request, apply a queued fault, then enforce auth.

    Order matters and is deliberate: a queued fault is consumed by the very
    next matching request, whatever its credentials, so tests stay predictable.
    """

    @app.before_request
    def _record_and_fault() -> Response | None:
        seen = SeenRequest(
            method=request.method,
            path=request.path,
            query={key: request.args.getlist(key) for key in request.args},
            headers={key: value for key, value in request.headers.items()},
            body=request.get_data(cache=True),
        )
        g.seen = seen
        with state.lock:
            state.requests.append(seen)
        fault = state.take_fault(request.method, request.path)
        seen.fault = fault
        if fault is not None:
            if fault.delay > 0:
                state._closing.wait(fault.delay)
            if fault.status is not None:
                return fault_to_response(fault, default_error_body)
        return check_auth()

    @app.after_request
    def _remember_status(response: Response) -> Response:
        seen = g.get("seen")
        if seen is not None:
            seen.status = response.status_code
        return response
