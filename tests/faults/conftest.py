"""Fixtures of the fault tests: the HubSpot stand-in on loopback (fresh per test)."""

from __future__ import annotations

from typing import Iterator

import pytest

from .hub import HubSpot


@pytest.fixture
def hub() -> Iterator[HubSpot]:
    hub = HubSpot()
    try:
        yield hub
    finally:
        hub.on_write = None
        hub.stop()
