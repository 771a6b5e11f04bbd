"""Headless Chromium and loopback servers for the browser tests.

Why this exists: the web tracker has to accept exactly what the *stock*
Segment clients send, and the only honest way to learn that is to run them:
analytics-next inside a real Chromium, pointed at a server on 127.0.0.1.

Loopback servers come from ``tests/support/servers.py`` (``serve``), re-exported
here so a browser test needs one import.

Rules this module enforces:

* Chromium is Debian's ``/usr/bin/chromium`` (``.ci/install-system.sh``
  installs it); Playwright's own browser download cannot work here.
* Without Chromium a test is skipped with a clear reason, except under
  ``CI=true``, where it fails: CI must never go green by skipping.
* Nothing a page asks for may leave the machine: non-loopback names don't
  resolve, and every such request is recorded so a test can assert none happened.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn
from urllib.parse import urlsplit

import pytest

from .servers import RunningServer, serve

__all__ = [
    "CHROMIUM_ARGS",
    "CHROMIUM_PATH",
    "GuardedContext",
    "RunningServer",
    "StartTimes",
    "chromium_available",
    "chromium_fixture",
    "in_ci",
    "launch_chromium",
    "netloc",
    "offline_context",
    "require_chromium",
    "serve",
    "serve_directory",
    "skip_or_fail",
]

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Request

CHROMIUM_PATH = Path(os.environ.get("CRMRULES_CHROMIUM", "/usr/bin/chromium"))
"""Debian's chromium; overridable for a developer machine with another build."""

CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",  # we run as root in a container; the sandbox refuses root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Keep Chromium's own traffic (updates, sync, safe browsing) off the wire:
    # the machine has no network and a hanging fetch only slows start-up.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No name but localhost resolves, so a stray CDN/API call fails at once
    # instead of waiting on a network this machine doesn't have.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)

FixtureScope = Literal["session", "package", "module", "class", "function"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def in_ci() -> bool:
    """CI sets ``CI=true``; there a missing prerequisite is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip locally, fail under CI, so a broken CI image can't look green."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: refusing to skip)", pytrace=False)
    pytest.skip(reason)


def chromium_available() -> bool:
    """True when the Debian chromium binary is installed and executable."""
    return CHROMIUM_PATH.is_file() and os.access(CHROMIUM_PATH, os.X_OK)


def require_chromium() -> None:
    """Skip (or under CI fail) the calling test when Chromium is missing."""
    if not chromium_available():
        skip_or_fail(f"{CHROMIUM_PATH} not found: run `bash .ci/install-system.sh`")


@dataclass
class StartTimes:
    """How long the pieces took, so slow CI start-up shows in reports."""

    driver_s: float = 0.0
    launch_s: float = 0.0


@contextmanager
def launch_chromium(times: StartTimes | None = None) -> Iterator[Browser]:
    """Start Playwright's driver and Debian chromium; stop both on exit.

    ``launch()`` (not a persistent context) is used on purpose: Playwright gives
    every launch a fresh temporary ``--user-data-dir`` and deletes it at close,
    and each ``browser.new_context()`` is a further clean, incognito-like profile,
    so tests never share cookies or localStorage (where analytics-next keeps
    ``ajs_anonymous_id``).
    """
    require_chromium()
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    with sync_playwright() as playwright:
        t1 = time.monotonic()
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM_PATH),
            headless=True,
            args=list(CHROMIUM_ARGS),
        )
        if times is not None:
            times.driver_s, times.launch_s = t1 - t0, time.monotonic() - t1
        try:
            yield browser
        finally:
            browser.close()


def chromium_fixture(scope: FixtureScope = "session") -> Any:
    """Build a pytest fixture yielding a running Chromium ``Browser``.

    Use in a conftest: ``chromium = chromium_fixture()``. Session scope by
    default because a launch costs about a second and contexts isolate tests.
    """

    def _chromium() -> Iterator[Browser]:
        with launch_chromium() as browser:
            yield browser

    return pytest.fixture(scope=scope)(_chromium)


@dataclass
class GuardedContext:
    """A browser context plus every non-loopback URL its pages asked for."""

    context: BrowserContext
    external: list[str] = field(default_factory=list)


def _is_external(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"http", "https", "ws", "wss"} and (parts.hostname or "") not in LOOPBACK_HOSTS


@contextmanager
def offline_context(browser: Browser, **context_options: Any) -> Iterator[GuardedContext]:
    """A fresh context whose pages cannot reach anything but loopback.

    Why: a stock library that quietly falls back to cdn.segment.com or
    api.segment.io would hang or pass by accident; here it lands in
    ``external`` instead. The blocking itself is Chromium's
    ``--host-resolver-rules`` (every name but localhost fails to resolve), and
    requests are only *observed* here, not intercepted: Playwright's
    ``route()`` answers CORS preflights itself, which would hide exactly the
    OPTIONS requests a cross-origin tracker endpoint must handle.
    """
    guarded = GuardedContext(browser.new_context(**context_options))

    def record(request: Request) -> None:
        if _is_external(request.url):
            guarded.external.append(request.url)

    guarded.context.on("request", record)
    try:
        yield guarded
    finally:
        guarded.context.close()


def netloc(server: RunningServer) -> str:
    """``host:port`` of a loopback server, the form analytics-next's apiHost wants."""
    return f"{server.host}:{server.port}"


@contextmanager
def serve_directory(root: Path) -> Iterator[RunningServer]:
    """Serve the files under ``root`` as static files on loopback (no index)."""
    from werkzeug.middleware.shared_data import SharedDataMiddleware
    from werkzeug.wrappers import Response

    with serve(SharedDataMiddleware(Response("not found", status=404), {"/": str(root)})) as server:
        yield server
