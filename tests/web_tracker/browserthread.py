"""Headless Chromium driven from a thread of its own, and a visitor walking the shop in it.

Why a thread: Playwright's sync API runs one driver per thread, and tests/browser keeps a session-wide one on
the main thread for as long as the test session lasts. Two on one thread fail ("Sync API inside the asyncio
loop"), whichever directory runs first. Ours lives on its own thread, so the two never meet; every call on a
Playwright object goes through `BrowserThread.call`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any, Callable, TypeVar

from tests.support.browser import GuardedContext, RunningServer, launch_chromium, offline_context

T = TypeVar("T")


class BrowserThread:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="web-tracker-chromium")
        self._stack = ExitStack()
        try:
            self.browser = self.call(lambda: self._stack.enter_context(launch_chromium()))
        except BaseException:
            self._pool.shutdown()
            raise

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._pool.submit(fn, *args, **kwargs).result()

    def context(self) -> tuple[GuardedContext, Callable[[], None]]:
        """A fresh offline context (see tests.support.browser.offline_context) and its closer."""

        stack = ExitStack()
        guarded = self.call(lambda: stack.enter_context(offline_context(self.browser)))
        return guarded, lambda: self.call(stack.close)

    def close(self) -> None:
        try:
            self.call(self._stack.close)
        finally:
            self._pool.shutdown()


class Visitor:
    """One browser profile walking through the shop; each method runs on the browser's thread."""

    def __init__(self, thread: BrowserThread, offline: GuardedContext, shop: RunningServer):
        self.thread = thread
        self.shop = shop
        self.page = thread.call(offline.context.new_page)

    def _done(self, analytics: bool) -> str:
        if analytics:
            assert self.page.evaluate("window.__sent") is True
        self.page.wait_for_function("document.documentElement.hasAttribute('data-crmrules-onsite')",
                                    timeout=15_000)
        return self.page.get_attribute("html", "data-crmrules-onsite") or ""

    def visit(self, path: str, analytics: bool = True) -> str:
        """Open a page and wait until analytics delivered its calls and the snippet finished; returns how many
        on-site messages the snippet showed (the `data-crmrules-onsite` mark it leaves on <html>)."""

        def go() -> str:
            self.page.goto(self.shop.url + path)
            return self._done(analytics)

        return self.thread.call(go)

    def reload(self) -> str:
        def again() -> str:
            self.page.reload()
            return self._done(True)

        return self.thread.call(again)

    def banners(self) -> list[str]:
        return self.thread.call(lambda: self.page.locator("[data-crmrules-message]").all_inner_texts())

    def banner_html_elements(self) -> int:
        """Elements the message text produced inside the banner (none: it is text)."""

        return self.thread.call(lambda: self.page.locator("[data-crmrules-message] b, [data-crmrules-message] img")
                                .count())

    def banner_visible(self) -> bool:
        return self.thread.call(lambda: self.page.locator("[data-crmrules-message]").is_visible())

    def close_banner(self) -> None:
        self.thread.call(lambda: self.page.locator("[data-crmrules-message]").get_by_role("button").click())

    def evaluate(self, script: str) -> Any:
        return self.thread.call(self.page.evaluate, script)

    def screenshot(self, path: str) -> None:
        self.thread.call(lambda: self.page.screenshot(path=path))
