"""The web tracker's routes as OpenAPI, registered with its source for the receiver's /openapi.json."""

from __future__ import annotations

from typing import Any


def describe(name: str, single: dict[str, str], batch: tuple[str, ...], codes: dict[int, str]) -> dict[str, Any]:
    """Paths and components: `single` maps path → message type, `batch` lists the batch paths."""

    ok = {"description": "stored (or already stored: a redelivery)", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"success": {"type": "boolean"}, "accepted": {"type": "integer"},
                                         "duplicates": {"type": "integer"}}}}}}
    errors = {str(code): {"description": f"{slug}: nothing was stored", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/TrackerError"}}}} for code, slug in codes.items()}
    security: list[dict[str, list[str]]] = [{"writeKeyBasic": []}, {"writeKeyInBody": []}]

    def op(summary: str, op_id: str, schema: str) -> dict[str, Any]:
        return {"post": {"summary": summary, "operationId": op_id, "tags": [name], "security": security,
                         "requestBody": {"content": {"text/plain": {"schema": {"$ref": schema}},
                                                     "application/json": {"schema": {"$ref": schema}}}},
                         "responses": {"200": ok, **errors}}}

    paths: dict[str, Any] = {}
    for path, kind in single.items():
        paths[f"/v1/{path}"] = op(f"One Segment {kind} message" + (" (analytics-next's short path)"
                                                                   if len(path) == 1 else ""),
                                  f"web_tracker_{path}", "#/components/schemas/SegmentMessage")
    for path in batch:
        paths[f"/v1/{path}"] = op("A Segment batch: {\"batch\": [messages], \"sentAt\", \"writeKey\"}",
                                  f"web_tracker_{path}", "#/components/schemas/SegmentBatch")
    paths["/v1/onsite"] = {"get": {
        "summary": "On-site messages waiting for this visitor (leased to this page until confirmed)",
        "operationId": "web_tracker_onsite", "tags": [name],
        "parameters": [{"name": n, "in": "query", "required": n == "writeKey", "schema": {"type": "string"}}
                       for n in ("writeKey", "anonymousId", "userId")],
        "responses": {"200": {"description": "messages", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"messages": {"type": "array", "items": {
                "type": "object", "properties": {k: {"type": "string"} for k in
                                                 ("id", "subject", "body", "locale")}}}}}}}},
                      **{k: v for k, v in errors.items() if k in ("401", "429")}}}}
    paths["/v1/onsite/shown"] = {"post": {
        "summary": "Confirm messages were shown: they are never handed out again",
        "operationId": "web_tracker_onsite_shown", "tags": [name],
        "requestBody": {"content": {"text/plain": {"schema": {"type": "object", "required": ["writeKey", "ids"],
                                                              "properties": {
            "writeKey": {"type": "string"}, "anonymousId": {"type": "string"}, "userId": {"type": "string"},
            "ids": {"type": "array", "items": {"type": "string"}}}}}}},
        "responses": {"200": {"description": "{\"success\": true, \"marked\": n}"},
                      **{k: v for k, v in errors.items() if k in ("400", "401", "429")}}}}
    paths["/v1/crmrules.js"] = {"get": {"summary": "The on-site snippet", "operationId": "web_tracker_snippet",
                                        "tags": [name], "responses": {"200": {"description": "JavaScript",
                                        "content": {"application/javascript": {"schema": {"type": "string"}}}}}}}
    return {"paths": paths, "components": {
        "schemas": {
            "SegmentMessage": {"type": "object", "description": "Segment spec: type, event/name/traits, "
                               "userId or anonymousId, messageId, timestamp (ISO 8601 with zone), properties, "
                               "context", "additionalProperties": True},
            "SegmentBatch": {"type": "object", "required": ["batch"], "properties": {
                "batch": {"type": "array", "items": {"$ref": "#/components/schemas/SegmentMessage"}},
                "sentAt": {"type": "string"}, "writeKey": {"type": "string"}, "context": {"type": "object"}}},
            "TrackerError": {"type": "object", "required": ["error"], "properties": {
                "success": {"type": "boolean"}, "code": {"type": "string"}, "message": {"type": "string"},
                "error": {"type": "string"}}}},
        "securitySchemes": {
            "writeKeyBasic": {"type": "http", "scheme": "basic",
                              "description": "the write key as the user name, no password (public: it routes)"},
            "writeKeyInBody": {"type": "apiKey", "in": "query", "name": "writeKey",
                               "description": "or \"writeKey\" in the JSON body"}}}}
