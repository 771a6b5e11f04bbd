"""Shared pieces of the fault tests: a `crmrules serve` subprocess wired to the HubSpot stand-in, signed webhook
batches, a sender that retries like HubSpot does, and readers that count effects in the store and at the CRM.

Everything is on loopback: the sidecar is a real process (tests/support/sidecar.py), its store a real SQLite
file, the HubSpot side the stand-in (tests/standins/hubspot.py) written to by the real hubspot-api-client.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from crmrules_hubspot.settings import parse as parse_hubspot
from crmrules_hubspot.signature import sign
from crmrules_hubspot.webhooks import to_events

from tests.standins import hubspot as hubspot_standin
from tests.support import waiting
from tests.support.servers import RunningServer, serve
from tests.support.sidecar import Sidecar, start_sidecar

HERE = Path(__file__).resolve().parent
PACKS = HERE / "packs"
FAULT_PLUGIN = HERE / "faultplugin.py"
TOKEN = "faults-access-token-5f1e2d"
CLIENT_SECRET = "faults-client-secret-9a7c3b"
PUBLIC_URL = "https://crm-hooks.example.com/hooks/hubspot"
PORTAL = 62515
HUBSPOT_ENV = {"HUBSPOT_CLIENT_SECRET": CLIENT_SECRET, "HUBSPOT_ACCESS_TOKEN": TOKEN,
               "CRMRULES_LOAD_PLUGINS": "hubspot", "CRMRULES_PLUGINS_PATH": str(FAULT_PLUGIN)}
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")


# ---------------------------------------------------------------- the CRM stand-in

class HubSpot:
    """The stand-in on loopback plus the counters the fault tests assert on.

    `on_write` (if set) is called inside the stand-in's request, after the write was applied and before the
    answer leaves: a test kills the sidecar there to crash it "after the CRM applied it, before it heard so".
    """

    def __init__(self, port: int = 0):
        self.app = hubspot_standin.create_app(token=TOKEN)
        self.state: hubspot_standin.HubSpotState = self.app.config["STATE"]
        self.on_write: Callable[[str, str, int], None] | None = None
        self.times: list[tuple[float, str, str]] = []  # (time, method, path) of every request, faults included
        self._install()
        self.server: RunningServer = serve(self.app, port=port)
        self.url = self.server.url
        self.port = self.server.port

    def _install(self) -> None:
        from flask import request

        def stamp() -> None:
            with self.state.lock:
                self.times.append((time.time(), request.method, request.path))

        # First of all before_request functions, so faulted requests are timed too.
        self.app.before_request_funcs.setdefault(None, []).insert(0, stamp)

        @self.app.after_request
        def after(response: Any) -> Any:
            hook = self.on_write
            if hook is not None and request.method in WRITE_METHODS and not request.path.endswith("/search") \
                    and response.status_code < 300:
                hook(request.method, request.path, response.status_code)
            return response

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        """Listen again on the same port with the same state (after `stop`, to play "connection refused")."""

        self.server = serve(self.app, port=self.port)

    # ------------------------------------------------------------ seeding and counting

    def contacts(self, n: int, prefix: str = "lead") -> list[str]:
        return [self.state.add("contacts", {"email": f"{prefix}{i}@example.com"}).id for i in range(n)]

    def tasks_by_key(self) -> Counter[str]:
        with self.state.lock:
            return Counter(t.properties.get("crmrules_key") or "" for t in self.state.tasks)

    def tasks_by_contact(self) -> Counter[str]:
        with self.state.lock:
            return Counter(a.to_id for a in self.state.associations if a.from_type == "tasks"
                           and a.to_type == "contacts")

    def property_writes(self, prop: str) -> Counter[str]:
        """PATCHes that wrote `prop`, per record id."""

        with self.state.lock:
            return Counter(u.id for u in self.state.property_updates if prop in u.properties)

    def prop(self, contact_id: str, name: str) -> str | None:
        obj = self.state.get("contacts", contact_id)
        return obj.properties.get(name) if obj else None

    def requests(self, method: str | None = None, prefix: str = "") -> list[Any]:
        return self.state.requests_to(prefix, method)


# ---------------------------------------------------------------- webhooks

def notification(subscription: str, object_id: Any, event_id: int, occurred_ms: int, **extra: Any) -> dict[str, Any]:
    base = {"eventId": event_id, "subscriptionId": 2_000_000 + event_id % 7, "portalId": PORTAL, "appId": 54321,
            "occurredAt": occurred_ms, "subscriptionType": subscription, "attemptNumber": 0,
            "objectId": object_id, "changeSource": "CRM"}
    base.update(extra)
    return base


def creation_batch(contact_ids: Iterable[str], first_event_id: int, now_ms: int | None = None,
                   first_name: str = "유진") -> list[dict[str, Any]]:
    """For each contact: `contact.creation` (→ record_update + created) and a first-name change."""

    now_ms = now_ms or int(time.time() * 1000)
    out = []
    event_id = first_event_id
    for cid in contact_ids:
        out.append(notification("contact.creation", int(cid), event_id, now_ms - 60_000))
        out.append(notification("contact.propertyChange", int(cid), event_id + 1, now_ms - 59_000,
                                propertyName="firstname", propertyValue=first_name))
        event_id += 2
    return out


def event_ids(batch: list[Any]) -> list[str]:
    """The inbox keys the HubSpot plugin makes of a batch (its own mapping, not a copy of it)."""

    events, _ = to_events(batch, parse_hubspot({}))
    return [e.id for e in events]


def signed(body: bytes, at: float | None = None, secret: str = CLIENT_SECRET, uri: str = PUBLIC_URL) -> dict[str, str]:
    timestamp = str(int((time.time() if at is None else at) * 1000))
    return {"X-HubSpot-Signature-v3": sign(secret, "POST", uri, body, timestamp),
            "X-HubSpot-Request-Timestamp": timestamp, "Content-Type": "application/json"}


def encode(batch: Any) -> bytes:
    return json.dumps(batch, ensure_ascii=False).encode("utf-8")


def post(url: str, path: str, body: bytes, headers: dict[str, str], timeout: float = 10.0,
         method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; raises OSError/HTTPException when the server dies under it."""

    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k: v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def deliver(sidecar: Sidecar, batch: list[dict[str, Any]], deadline: float = 60.0, pause: float = 0.05,
            after_2xx: Callable[[], None] | None = None) -> tuple[int, dict[str, Any], int]:
    """Send a batch until it is answered 2xx, as HubSpot does: re-signed, `attemptNumber` counting up.

    Returns (status, answer, attempts). A 4xx other than 429 is not retried (that is a test failure).
    """

    ends = time.monotonic() + deadline
    attempt = 0
    last = ""
    while time.monotonic() < ends:
        for n in batch:
            n["attemptNumber"] = attempt
        body = encode(batch)
        attempt += 1
        try:
            status, _, answer = post(sidecar.url, "/hooks/hubspot", body, signed(body))
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(pause)
            continue
        if 200 <= status < 300:
            if after_2xx is not None:
                after_2xx()
            return status, json.loads(answer), attempt
        last = f"{status} {answer[:200]!r}"
        if 400 <= status < 500 and status != 429:
            return status, {"error": answer.decode("utf-8", "replace")}, attempt
        time.sleep(pause)
    raise AssertionError(f"a batch was never answered 2xx in {deadline:g} s (last: {last})")


# ---------------------------------------------------------------- the sidecar

def hubspot_config(hub: HubSpot, packs: list[Path], **plugin: Any) -> dict[str, Any]:
    extra = plugin.pop("settings", {})
    return {"rules": [str(p) for p in packs], "targets": {"default": "hubspot"},
            "plugins": {"hubspot": {"host": hub.url, "public_url": PUBLIC_URL, "portal_ids": [PORTAL],
                                    "timeout": 5, **plugin}}, **extra}


def start(tmp_path: Path, hub: HubSpot, packs: list[Path], env: dict[str, str] | None = None,
          **plugin: Any) -> Sidecar:
    return start_sidecar(tmp_path, hubspot_config(hub, packs, **plugin), env={**HUBSPOT_ENV, **(env or {})})


# ---------------------------------------------------------------- reading the store (another process's file)

@contextlib.contextmanager
def db(sidecar_or_path: Sidecar | Path) -> Any:
    path = sidecar_or_path.store_path if isinstance(sidecar_or_path, Sidecar) else sidecar_or_path
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def rows(sidecar: Sidecar | Path, sql: str, *args: Any) -> list[dict[str, Any]]:
    with db(sidecar) as conn:
        return [dict(r) for r in conn.execute(sql, args)]


def inbox(sidecar: Sidecar | Path) -> dict[str, str]:
    """inbox key → status."""

    return {r["key"]: r["status"] for r in rows(sidecar, "SELECT key, status FROM inbox")}


def outbox_counts(sidecar: Sidecar | Path) -> Counter[str]:
    return Counter({r["status"]: r["n"] for r in rows(sidecar, "SELECT status, count(*) AS n FROM outbox GROUP BY status")})


def drained(sidecar: Sidecar | Path) -> bool:
    """Nothing left to evaluate and nothing left to push (sent, dead or cancelled only)."""

    pending = rows(sidecar, "SELECT count(*) AS n FROM inbox WHERE status='pending'")[0]["n"]
    counts = outbox_counts(sidecar)
    return pending == 0 and counts.get("pending", 0) == 0 and counts.get("sending", 0) == 0


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition", every: float = 0.05) -> Any:
    return waiting.wait_until(check, timeout, what, every)  # sidecar restarts are slow: a longer default


@dataclass
class Sender:
    """A thread delivering batches one after another, each until it is answered 2xx (HubSpot's behaviour)."""

    sidecar: Sidecar
    batches: list[list[dict[str, Any]]]
    pause: float = 0.0
    after_2xx: Callable[[], None] | None = None
    answers: list[tuple[int, dict[str, Any], int]] = field(default_factory=list)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> "Sender":
        self.thread = threading.Thread(target=self._run, name="hubspot-sender", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            for batch in self.batches:
                self.answers.append(deliver(self.sidecar, batch, after_2xx=self.after_2xx))
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as exc:  # reported by join()
            self.error = exc

    @property
    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()

    def join(self, timeout: float = 120.0) -> list[tuple[int, dict[str, Any], int]]:
        assert self.thread is not None
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"the sender did not finish in {timeout:g} s ({len(self.answers)} batches answered)")
        if self.error is not None:
            raise self.error
        return self.answers
