"""A push target on loopback that answers from a script: (status, headers) per request, then 200s.

Why: the dispatcher's retry logic is only believable against a real socket answering 429 with Retry-After, 500
and then success; the target records every request (time, body, Idempotency-Key) for the assertions.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request

from tests.support.servers import RunningServer, serve


@dataclass
class Received:
    at: float
    status: int
    body: Any
    key: str | None


@dataclass
class ScriptedTarget:
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: RunningServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "/push"

    def answer(self) -> Response:
        with self.lock:
            status, headers = self.script.pop(0) if self.script else (200, {})
            self.received.append(Received(time.time(), status, request.get_json(silent=True),
                                          request.headers.get("Idempotency-Key")))
        return Response('{"id": "T-1"}' if status < 300 else f'{{"error": "scripted {status}"}}', status=status,
                        headers=headers, content_type="application/json")

    def successes(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.status < 300]

    def wait_for(self, count: int, timeout: float = 15.0, ok_only: bool = True) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.successes() if ok_only else list(self.received)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"target got {len(self.received)} request(s) ({self.received}); wanted {count}")


def start_target(script: list[tuple[int, dict[str, str]]] | None = None) -> ScriptedTarget:
    target = ScriptedTarget(script=list(script or []))
    app = Flask("scripted-target")
    app.add_url_rule("/push", "push", target.answer, methods=["POST"])
    target.server = serve(app)
    return target
