"""The receiver's OpenAPI 3.1 description: its own endpoints plus whatever the plugins mount.

A plugin describes its routes when it registers its source (`register(name, blueprint=..., openapi=...)`): either
a `paths` mapping or a partial document (`{"paths": ..., "components": ...}`). Routes a plugin does not describe are still listed,
from the URL map and the view's docstring, so the description never silently misses an endpoint.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Mapping

from flask import Flask

_JSON_ERROR = {"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

OWN_PATHS: dict[str, Any] = {
    "/healthz": {"get": {"summary": "The process is up", "operationId": "healthz", "tags": ["receiver"],
                         "responses": {"200": {"description": "up",
                                               "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    "/readyz": {"get": {"summary": "The store takes writes and the rule packs are loaded", "operationId": "readyz",
                        "tags": ["receiver"],
                        "responses": {"200": {"description": "ready", "content": {"application/json": {
                                          "schema": {"$ref": "#/components/schemas/Readiness"}}}},
                                      "503": {"description": "not ready", "content": {"application/json": {
                                          "schema": {"$ref": "#/components/schemas/Readiness"}}}}}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics", "tags": ["receiver"],
                         "responses": {"200": {"description": "Prometheus text exposition format",
                                               "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/openapi.json": {"get": {"summary": "This description", "operationId": "openapi", "tags": ["receiver"],
                              "responses": {"200": {"description": "OpenAPI 3.1 document",
                                                    "content": {"application/json": {"schema": {"type": "object"}}}}}}},
}

COMPONENTS: dict[str, Any] = {"schemas": {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Readiness": {"type": "object", "properties": {
        "ready": {"type": "boolean"},
        "checks": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "check name → 'ok' or why it failed"},
        "rules": {"type": "integer", "minimum": 0, "description": "rules running now"},
        "reload": {"type": "object", "description": "the last reload of the rule packs (SIGHUP), once there was one",
                   "required": ["ok", "at"], "properties": {
                       "ok": {"type": "boolean", "description": "false: refused, the packs loaded before keep running"},
                       "at": {"type": "number", "description": "Unix time"},
                       "packs": {"type": "integer"}, "rules": {"type": "integer"},
                       "errors": {"type": "array", "items": {"type": "string"},
                                  "description": "file:line:column: message, for each error"}}}},
        "required": ["ready", "checks"]},
}}

_CONVERTER = re.compile(r"<(?:(?P<conv>[a-zA-Z_]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_TYPES = {"int": "integer", "float": "number"}


def _version() -> str:
    try:
        return version("crmrules")
    except PackageNotFoundError:
        return "0"


def _path_and_params(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = [{"name": m["name"], "in": "path", "required": True,
               "schema": {"type": _TYPES.get(m["conv"] or "", "string")}} for m in _CONVERTER.finditer(rule)]
    return _CONVERTER.sub(lambda m: "{" + m["name"] + "}", rule), params


def _merge(paths: dict[str, Any], extra: Mapping[str, Any], owner: str) -> None:
    for path, operations in extra.items():
        into = paths.setdefault(path, {})
        for method, operation in operations.items():
            if method in into:
                raise ValueError(f"openapi: {method.upper()} {path} of {owner!r} is already described")
            into[method] = operation


def build(app: Flask, sources: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """The document for `app`, whose plugin blueprints are `sources` (mounted name → what the plugin described)."""

    paths: dict[str, Any] = {}
    components: dict[str, Any] = {k: dict(v) for k, v in COMPONENTS.items()}
    _merge(paths, OWN_PATHS, "receiver")
    for name, described in sources.items():
        described = described or {}
        document = described if "paths" in described else {"paths": described}
        _merge(paths, document["paths"], name)
        for kind, items in (document.get("components") or {}).items():
            components.setdefault(kind, {}).update(items)
    sources_of = set(sources)
    for rule in app.url_map.iter_rules():
        plugin = rule.endpoint.split(".", 1)[0] if "." in rule.endpoint else None
        if plugin not in sources_of:
            continue
        path, params = _path_and_params(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if method.lower() in paths.get(path, {}):
                continue
            view = app.view_functions.get(rule.endpoint)
            doc = (getattr(view, "__doc__", None) or "").strip().splitlines()
            operation: dict[str, Any] = {"summary": doc[0] if doc else rule.endpoint, "tags": [plugin],
                                         "responses": {"200": {"description": "OK"}, "default": _JSON_ERROR}}
            if params:
                operation["parameters"] = params
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "crmrules receiver", "version": _version(),
                 "description": "Webhooks in (mounted by plugins), health, readiness and metrics of the sidecar."},
        "paths": dict(sorted(paths.items())),
        "components": components,
    }
