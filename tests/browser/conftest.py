"""Fixtures for tests that drive headless Chromium against loopback servers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

# tests/ has no __init__.py; put the repo root on sys.path so `tests.support`
# imports the same way under `pytest` and `python -m pytest`.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.browser import (
    GuardedContext,
    chromium_fixture,
    offline_context,
    skip_or_fail,
)

HERE = Path(__file__).resolve().parent
ANALYTICS_NEXT_UMD = HERE / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
"""Stock analytics-next's prebuilt browser bundle (UMD, global `AnalyticsNext`)
plus the webpack chunks it may lazy-load from the same folder."""

chromium = chromium_fixture(scope="session")


@pytest.fixture
def offline(chromium: Browser) -> Iterator[GuardedContext]:
    """A fresh browser context per test; anything not on loopback is blocked."""
    with offline_context(chromium) as guarded:
        yield guarded


@pytest.fixture(scope="session")
def analytics_next_umd() -> Path:
    """The npm package's UMD folder; skip (fail under CI) if npm ci never ran."""
    if not (ANALYTICS_NEXT_UMD / "index.js").is_file():
        skip_or_fail(f"{ANALYTICS_NEXT_UMD} missing: run `bash .ci/install-system.sh`")
    return ANALYTICS_NEXT_UMD
