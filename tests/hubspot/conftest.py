"""Fixtures for the HubSpot plugin tests: the HubSpot stand-in on loopback, secrets in the environment,
and a small Flask app that mounts the plugin's blueprint the way the receiver does."""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import pytest
from flask import Flask, Response
from hubspot.utils.signature import Signature

from crmrules.api import Event, Rejected, Runtime

from ..standins import hubspot as hubspot_standin
from ..support.servers import RunningServer, serve

TOKEN = "test-token"
CLIENT_SECRET = "app-client-secret-0b7f"
PUBLIC_URL = "https://crm-hooks.example.com/hooks/hubspot"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("HUBSPOT_CLIENT_SECRET", CLIENT_SECRET)


@pytest.fixture
def hubspot_server() -> Iterator[RunningServer]:
    with serve(hubspot_standin.create_app(token=TOKEN)) as server:
        yield server


@pytest.fixture
def hubspot_state(hubspot_server: RunningServer) -> hubspot_standin.HubSpotState:
    return hubspot_server.app.config["STATE"]


@pytest.fixture
def settings(hubspot_server: RunningServer) -> dict[str, Any]:
    """Deployment settings as the dispatcher would hand them over (whole file, our section inside)."""
    return {"plugins": {"hubspot": {"host": hubspot_server.url, "timeout": 2, "public_url": PUBLIC_URL}}}


class Inbox:
    """What `crmrules.api.ingest` does, in memory: each (source, id) once."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.keys: set[tuple[str, str]] = set()

    def __call__(self, events: list[Event]) -> list[bool]:
        fresh = []
        for event in events:
            key = (event.source, event.id)
            fresh.append(key not in self.keys)
            if key not in self.keys:
                self.keys.add(key)
                self.events.append(event)
        return fresh


def receiver_app(options: dict[str, Any], inbox: Inbox) -> Flask:
    from crmrules.plugins import PluginContexts, fresh_registry

    registry = fresh_registry()  # a blueprint of this app's own
    settings = {"plugins": {"hubspot": options}}
    app = Flask("receiver-under-test")
    app.extensions["crmrules"] = Runtime(ingest=inbox, settings=settings, contexts=PluginContexts(registry, settings),
                                         sources=frozenset(registry.sources))
    blueprint = registry.sources["hubspot"].blueprint
    assert blueprint is not None
    app.register_blueprint(blueprint)

    @app.errorhandler(Rejected)
    def _rejected(exc: Rejected) -> Response:
        return Response(json.dumps({"error": exc.reason}), status=exc.status, mimetype="application/json")

    return app


def signed_headers(body: str | bytes, *, secret: str = CLIENT_SECRET, uri: str = PUBLIC_URL,
                   method: str = "POST", at: float | None = None) -> dict[str, str]:
    """Headers HubSpot would send, made with hubspot-api-client's own helper."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    timestamp = str(int((time.time() if at is None else at) * 1000))
    signature = Signature.get_signature(secret, text, "v3", http_uri=uri, http_method=method, timestamp=timestamp)
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp,
            "Content-Type": "application/json"}


def notification(subscription: str, object_id: int = 1001, event_id: int = 1, **extra: Any) -> dict[str, Any]:
    base = {"eventId": event_id, "subscriptionId": 2_000_000 + event_id, "portalId": 62515, "appId": 54321,
            "occurredAt": 1_790_000_000_000 + event_id, "subscriptionType": subscription, "attemptNumber": 0,
            "objectId": object_id, "changeSource": "CRM"}
    base.update(extra)
    return base
