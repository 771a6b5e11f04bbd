"""The receiver: a Flask app that mounts the plugins' webhook blueprints and answers health, readiness,
metrics and its own OpenAPI description.

Why this shape: a webhook sender (HubSpot, Salesforce, a browser) only needs to know its event is safe, so a view
verifies, writes the inbox (`crmrules.api.ingest`) and answers; evaluation happens later on the worker thread.
Every error leaves as JSON with a reason a sender's admin can act on, and nothing internal: a traceback goes to
the log (PII masked) under an id that the answer quotes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable

from flask import Blueprint, Flask, Request, Response, has_request_context, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

from ..api import Rejected, Runtime
from ..store import StoreUnavailable

if TYPE_CHECKING:
    from ..store import MetaStore
from . import openapi
from .metrics import CONTENT_TYPE, Metrics, counting

log = logging.getLogger("crmrules.receiver")

RETRY_AFTER_UNAVAILABLE = 5
"""Seconds a sender is asked to wait when the store cannot take writes (disk full, locked too long)."""

Check = Callable[[], str | None]
"""A readiness check: returns None when fine, else why not (shown in /readyz)."""


class _Request(Request):
    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            return super().on_json_loading_failed(e)  # wrong Content-Type: 415 with Flask's own reason
        raise BadRequest(f"the body is not valid JSON: {e}")


def _source_of(events: list[Any]) -> str:
    """The metrics label of an ingest: the receiving plugin in a request, else the events' source (pulls)."""

    if has_request_context() and request.blueprint:
        return request.blueprint
    return str(getattr(events[0], "source", "unknown"))


def _error(status: int, reason: str, **extra: Any) -> Response:
    response = jsonify({"error": reason, **extra})
    response.status_code = status
    return response


def create_app(runtime: Runtime, plugins: Any = None, *, packs: list[Any] | None = None,
               checks: dict[str, Check] | None = None,
               status: Callable[[], dict[str, Any]] | None = None) -> Flask:
    """The receiver app for `runtime`, with every registered source's blueprint mounted.

    `plugins` is the `crmrules.registry.Registry` to mount (default: a fresh collection of the loaded plugins, so
    this app's blueprints are its own). `packs` are the loaded rule packs (None: not loaded, /readyz answers
    503); `checks` are extra readiness checks (the server adds the worker's); `status` adds fields to /readyz's
    answer that do not decide readiness (the last reload of the rule packs). The runtime handed to views is a
    copy whose `ingest` also counts events in `runtime.metrics` (created if missing), that knows the registered
    sources, and that has plugin contexts (built from `runtime.settings` if it brought none).
    """

    from ..plugins import PluginContexts, fresh_registry

    registry = plugins or fresh_registry()
    metrics = runtime.metrics if runtime.metrics is not None else Metrics(runtime.store)
    contexts = runtime.contexts or PluginContexts(registry, runtime.settings, metrics=metrics.registry)
    runtime = dataclasses.replace(runtime, metrics=metrics, ingest=counting(runtime.ingest, metrics, _source_of),
                                  contexts=contexts, sources=frozenset(registry.sources))
    cap = int(runtime.settings.get("max_body_bytes") or 1_000_000)

    app = Flask("crmrules.receiver")
    app.request_class = _Request
    app.config["MAX_CONTENT_LENGTH"] = cap
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # reasons may quote Korean field values
    app.extensions["crmrules"] = runtime

    # Mounted under the blueprint's own name, which is also the `source` label of the events it counts.
    sources: dict[str, Blueprint] = {}
    documents: dict[str, Any] = {}
    for source in registry.sources.values():
        if source.blueprint is not None:
            sources[source.blueprint.name] = source.blueprint
            documents[source.blueprint.name] = source.openapi
            app.register_blueprint(source.blueprint)
    app.extensions["crmrules.sources"] = sources
    _routes(app, runtime, packs, checks or {}, status)
    _error_handlers(app, metrics, sources, cap)
    document = openapi.build(app, documents)  # built now so that two plugins claiming one route fail at start
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document))
    return app


def _routes(app: Flask, runtime: Runtime, packs: list[Any] | None, checks: dict[str, Check],
            status: Callable[[], dict[str, Any]] | None) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        """The process answers; nothing else is checked (a liveness probe must not fail on a busy disk)."""

        return jsonify({"status": "up"})

    @app.get("/readyz")
    def readyz() -> Response:
        """Ready to accept events: the store takes a write, the rule packs are loaded, extra checks pass."""

        results = {"store": _store_writable(runtime.store),
                   "packs": "ok" if packs is not None else "rule packs are not loaded"}
        for name, check in checks.items():
            try:
                results[name] = check() or "ok"
            except Exception as exc:  # a broken check means not ready, not a 500
                results[name] = f"check failed: {exc}"
        ready = all(v == "ok" for v in results.values())
        answer = {"ready": ready, "checks": results, "rules": sum(len(p.rules) for p in packs) if packs else 0}
        if status is not None:
            answer.update(status())
        response = jsonify(answer)
        response.status_code = 200 if ready else 503
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/metrics")
    def metrics_view() -> Response:
        """Prometheus text format."""

        return Response(runtime.metrics.render(), content_type=CONTENT_TYPE)


def _store_writable(store: MetaStore | None) -> str:
    if store is None:
        return "no store"
    try:
        store.set_meta("receiver.ready_probe", f"{time.time():.3f}")
    except Exception as exc:  # StoreUnavailable, sqlite3 errors: the reason is for the operator
        return f"the store does not take writes: {exc}"
    return "ok"


def _error_handlers(app: Flask, metrics: Metrics, sources: dict[str, Blueprint], cap: int) -> None:
    @app.before_request
    def cap_body() -> Response | None:
        # Flask only enforces MAX_CONTENT_LENGTH when the body is read; refuse early whatever the view does.
        if request.content_length is not None and request.content_length > cap:
            raise RequestEntityTooLarge()
        return None

    @app.after_request
    def count_rejections(response: Response) -> Response:
        if request.blueprint in sources and 400 <= response.status_code < 500:
            metrics.count_rejected(request.blueprint)
        return response

    @app.errorhandler(Rejected)
    def rejected(exc: Rejected) -> Response:
        return _error(exc.status, exc.reason)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        return _error(413, f"the body is larger than {cap} bytes (max_body_bytes)")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = _error(exc.code or 500, exc.description or exc.name)
        for name, value in exc.get_headers():  # e.g. Allow on 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(StoreUnavailable)
    def unavailable(exc: StoreUnavailable) -> Response:
        log.error("store unavailable on %s %s: %s", request.method, request.path, exc)
        response = _error(503, "the store cannot take writes right now; nothing was kept, send again later")
        response.headers["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
        return response

    @app.errorhandler(RecursionError)
    def too_deep(exc: RecursionError) -> Response:
        # json.loads (and Flask's get_json) recurse per nesting level: "[[[[…" a million deep, well under
        # max_body_bytes, is a sender's problem, not ours. Raised before any ingest, so nothing was written.
        log.warning("refused %s %s: the body is nested too deeply to read", request.method, request.path)
        return _error(400, "the body is nested too deeply to read")

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> Response:
        error_id = uuid.uuid4().hex[:12]
        log.exception("error %s on %s %s", error_id, request.method, request.path)
        return _error(500, "internal error; the sidecar's log has the details", id=error_id)
