"""A schemathesis pass over the receiver's published /openapi.json, against a live `crmrules serve` with the
HubSpot, Salesforce and web-tracker plugins mounted: whatever schemathesis sends (valid and invalid bodies,
headers, parameters, other methods), the sidecar never answers 5xx and every answer matches the document
(status codes, content types, headers, JSON schemas).

Generated requests carry valid credentials (a HubSpot v3 signature computed over the exact bytes sent, the Flow
secret, a tracker write key), so the bodies reach the parsers instead of stopping at 401."""

from __future__ import annotations

import base64
import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from tests.support.sidecar import start_sidecar

from .hub import CLIENT_SECRET, PACKS, PORTAL, PUBLIC_URL, signed

FLOW_SECRET = "oa-flow-secret"
WRITE_KEY = "wk_oa_1"
ENV = {"HUBSPOT_CLIENT_SECRET": CLIENT_SECRET, "HUBSPOT_ACCESS_TOKEN": "oa-hubspot-token",
       "SALESFORCE_FLOW_SECRET": FLOW_SECRET, "CRMRULES_LOAD_PLUGINS": "hubspot,salesforce,web_tracker"}
CONFIG = {"rules": [str(PACKS / "welcome")],
          "plugins": {"hubspot": {"public_url": PUBLIC_URL, "portal_ids": [PORTAL]},
                      "salesforce": {"organization_id": "00D5g000004SsJtEAK"},
                      "web_tracker": {"write_keys": [WRITE_KEY], "allowed_origins": ["*"],
                                      "rate_per_second": 10000, "rate_burst": 100000}}}


@pytest.fixture(scope="module")
def receiver_schema(tmp_path_factory: pytest.TempPathFactory):
    sidecar = start_sidecar(tmp_path_factory.mktemp("openapi"), CONFIG, env=ENV)
    try:
        yield schemathesis.openapi.from_url(sidecar.url + "/openapi.json"), sidecar.url
    finally:
        status = sidecar.stop()
        assert status == 0, sidecar.log()
        assert "Traceback" not in sidecar.log(), sidecar.log()  # no request made the sidecar log a crash


CHECKS = [checks.not_a_server_error, openapi_checks.status_code_conformance,
          openapi_checks.content_type_conformance, openapi_checks.response_schema_conformance,
          openapi_checks.response_headers_conformance]


def _with_credentials(case, base_url: str) -> dict:
    kwargs = case.as_transport_kwargs(base_url=base_url)
    headers = dict(kwargs.get("headers") or {})
    if "json" in kwargs:  # serialise here, so that the signature covers the very bytes sent
        kwargs["data"] = json.dumps(kwargs.pop("json")).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    data = kwargs.get("data")
    if isinstance(data, str):
        data = kwargs["data"] = data.encode("utf-8")
    if case.path == "/hooks/hubspot":
        headers.update({k: v for k, v in signed(data or b"").items() if k != "Content-Type"})
    elif case.path == "/hooks/salesforce/flow":
        headers["X-Crmrules-Secret"] = FLOW_SECRET
    elif case.path.startswith("/v1/"):
        headers["Authorization"] = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    kwargs["headers"] = headers
    return kwargs


def test_the_receiver_conforms_to_its_openapi_document(receiver_schema) -> None:
    """Every operation of the document, each with its own Hypothesis run (schemathesis' pytest loader does not
    run under pytest 9, so its Python API drives the runs here)."""

    schema, base_url = receiver_schema
    failures = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def exchange(case) -> None:
            response = requests.request(**_with_credentials(case, base_url), timeout=30)
            case.validate_response(response, checks=CHECKS)

        try:
            exchange()
        except Exception as exc:  # collect them all, so one run shows every gap in the document
            failures[f"{operation.method.upper()} {operation.path}"] = f"{type(exc).__name__}: {exc}"[:1500]
    assert operations >= 20  # the plugins' routes are in the document
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())
