"""Fixtures of the web tracker tests: the sidecar stand-in, Chromium, and the shop site."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.browser import GuardedContext, serve, skip_or_fail  # noqa: E402
from tests.web_tracker.browserthread import BrowserThread  # noqa: E402
from tests.web_tracker.stack import TEST_PACK, StandIn, settings_for  # noqa: E402

ANALYTICS_NEXT_UMD = REPO_ROOT / "tests" / "browser" / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"

@pytest.fixture(scope="session")
def browser_thread() -> Iterator[BrowserThread]:
    """Chromium on a thread of its own (see browserthread.py: tests/browser keeps one on the main thread)."""

    thread = BrowserThread()
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture
def offline(browser_thread: BrowserThread) -> Iterator[GuardedContext]:
    """A fresh context per test; anything not on loopback is blocked and recorded in `.external`."""

    guarded, close = browser_thread.context()
    try:
        yield guarded
    finally:
        close()


@pytest.fixture(scope="session")
def analytics_next_umd() -> Path:
    if not (ANALYTICS_NEXT_UMD / "index.js").is_file():
        skip_or_fail(f"{ANALYTICS_NEXT_UMD} missing: run `bash .ci/install-system.sh`")
    return ANALYTICS_NEXT_UMD


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[StandIn]:
    """The deployment under test, with the test pack, listening on loopback."""

    with StandIn(settings_for(tmp_path, [TEST_PACK])) as stack:
        yield stack


@pytest.fixture
def shop(analytics_next_umd: Path, sidecar: StandIn):
    from tests.web_tracker.site import shop_app
    from tests.web_tracker.stack import WRITE_KEY

    with serve(shop_app(analytics_next_umd, sidecar.url, WRITE_KEY)) as server:
        yield server
