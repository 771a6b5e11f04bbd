"""Fixtures for the stand-in self-tests: each test gets fresh apps on fresh ports."""

from __future__ import annotations

from typing import Iterator

import pytest

try:  # tests/ is a package (tests/__init__.py exists)
    from ..support.servers import RunningServer, serve
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from support.servers import RunningServer, serve  # type: ignore[no-redef]

from . import hubspot as hubspot_standin
from . import salesforce as salesforce_standin

HUBSPOT_TOKEN = "test-token"
SF_SESSION = "test-session"
SF_INSTANCE = "example.my.salesforce.com"


@pytest.fixture
def hubspot_server() -> Iterator[RunningServer]:
    with serve(hubspot_standin.create_app(token=HUBSPOT_TOKEN)) as server:
        yield server


@pytest.fixture
def hubspot_state(hubspot_server: RunningServer) -> hubspot_standin.HubSpotState:
    return hubspot_server.app.config["STATE"]


@pytest.fixture
def hubspot_client(hubspot_server: RunningServer):  # -> hubspot.HubSpot
    from hubspot import HubSpot

    return HubSpot(access_token=HUBSPOT_TOKEN, host=hubspot_server.url)


@pytest.fixture
def salesforce_server() -> Iterator[RunningServer]:
    with serve(salesforce_standin.create_app(session_id=SF_SESSION)) as server:
        yield server


@pytest.fixture
def salesforce_state(salesforce_server: RunningServer) -> salesforce_standin.SalesforceState:
    return salesforce_server.app.config["STATE"]


@pytest.fixture
def sf(salesforce_server: RunningServer):  # -> simple_salesforce.Salesforce
    from simple_salesforce import Salesforce

    session = salesforce_standin.rewriting_session(salesforce_server.url, timeout=5.0)
    client = Salesforce(instance=SF_INSTANCE, session_id=SF_SESSION, session=session)
    yield client
    session.close()
