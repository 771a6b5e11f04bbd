"""The whole path in a real browser: stock analytics-next in headless Chromium → /v1 → inbox → rules → on-site
message → crmrules.js shows it on the next page, once, and never again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crmrules.api import RECORD_UPDATE
from tests.support.browser import GuardedContext, RunningServer
from tests.web_tracker.browserthread import BrowserThread, Visitor
from tests.web_tracker.stack import StandIn, onsite_file, wait_until

pytestmark = pytest.mark.browser

SCREENSHOT_DIR = Path(os.environ.get("CRMRULES_SCREENSHOTS", "/tmp"))


def test_anonymous_visitor_who_identifies_is_one_lead_and_sees_the_coupon_once(
        browser_thread: BrowserThread, offline: GuardedContext, shop: RunningServer, sidecar: StandIn) -> None:
    visitor = Visitor(browser_thread, offline, shop)

    # Anonymous: home and three product pages (page + "Product Viewed" each). Nothing to show yet.
    assert visitor.visit("/") == "0"
    for n in (1, 2, 3):
        assert visitor.visit(f"/products/{n}") == "0"
    sidecar.wait_for_inbox(7)
    sidecar.process()  # the worker evaluates; the dispatcher pushes the coupon to the web tracker
    [row] = _onsite_rows(sidecar)
    assert row["rule"] == "onsite-coupon-test/secret-coupon" and row["shown_at"] is None

    # The next page shows it (the visitor also logs in there) ...
    assert visitor.visit("/account") == "1"
    [text] = visitor.banners()
    assert "고객님만을 위한 비밀 쿠폰" in text
    assert "코드 <b>WELCOME10</b>" in text  # shown as text: the markup in the rule's body is not HTML
    assert visitor.banner_html_elements() == 0 and visitor.banner_visible()
    shot = SCREENSHOT_DIR / "crmrules-onsite-coupon.png"
    visitor.screenshot(str(shot))
    assert shot.stat().st_size > 0
    wait_until(lambda: _onsite_rows(sidecar)[0]["shown_at"] is not None, 5, lambda: "never marked shown")
    assert _onsite_rows(sidecar)[0]["body"] == ""  # the text is not kept once shown

    # ... and the close button dismisses it.
    visitor.close_banner()
    assert visitor.banners() == []

    # Never again: not on reload, not on a new page, not after more product views.
    assert visitor.reload() == "0"
    assert visitor.visit("/products/4") == "0"
    assert visitor.banners() == []
    sidecar.wait_for_inbox(7 + 2 + 1 + 2 + 2)  # /account page+identify, shown, reload of /account, /products/4
    sidecar.process()
    assert visitor.visit("/products/5") == "0"

    # The anonymous browsing and the identify landed on ONE lead, with every id.
    anonymous_id = visitor.evaluate("window.analytics.user().then(u => u.anonymousId())")
    [(lead_id, _kind, state)] = sidecar.store.entities("lead")
    # The email is the visitor's claim (the public tracker cannot vouch for it): kept, findable, never an id.
    assert state["identities"] == {"anonymous_id": anonymous_id, "user_id": "user-42"}
    assert state["claims"] == {"email": "kim@example.com"}
    assert sidecar.store.find_entity("kim@example.com") == lead_id == sidecar.store.find_entity("user-42")
    assert state["props"]["first_name"] == "유진" and state["props"]["email"] == "kim@example.com"
    assert not state["trusted"]  # only the public tracker knows this lead
    events = sidecar.store.events_of(lead_id)
    assert {e.source for e in events} == {"web"}
    types = [e.type for e in events]
    assert types.count("product_view") == 4 and types.count(RECORD_UPDATE) == 2  # /account and its reload
    assert types.count("onsite_message_shown") == 1 and types.count("page_view") >= 6

    # The rule fired once; the rule that wanted a CRM task was stopped by the core's tracker guard.
    decisions = {(d.rule, d.outcome) for d in sidecar.store.all_decisions()}
    assert ("secret-coupon", "fired") in decisions
    assert ("call-the-browser", "blocked") in decisions and ("call-the-browser", "fired") not in decisions
    assert offline.external == []


def test_the_snippet_works_without_analytics(browser_thread: BrowserThread, offline: GuardedContext,
                                             shop: RunningServer, sidecar: StandIn) -> None:
    visitor = Visitor(browser_thread, offline, shop)
    assert visitor.visit("/plain/first", analytics=False) == "0"
    sidecar.wait_for_inbox(1)  # the snippet sent the page view itself
    anonymous_id = visitor.evaluate("localStorage.getItem('crmrules_anonymous_id')")
    visitor.evaluate("""Promise.all([1, 2, 3].map(n =>
        crmrules.track('Product Viewed', { product_id: 'p' + n }).then(r => r.status)))""")
    sidecar.wait_for_inbox(4)
    sidecar.process()

    assert visitor.visit("/plain/second", analytics=False) == "1"
    assert "WELCOME10" in visitor.banners()[0]
    wait_until(lambda: _onsite_rows(sidecar)[0]["shown_at"] is not None, 5, lambda: "never marked shown")
    assert visitor.visit("/plain/third", analytics=False) == "0"

    sidecar.wait_for_inbox(4 + 1 + 1 + 1)
    sidecar.process()
    [(_id, _kind, state)] = sidecar.store.entities("lead")
    assert state["identities"] == {"anonymous_id": anonymous_id}
    assert offline.external == []


def test_analytics_next_batching_mode(browser_thread: BrowserThread, offline: GuardedContext, shop: RunningServer,
                                      sidecar: StandIn) -> None:
    visitor = Visitor(browser_thread, offline, shop)
    for n in (1, 2, 3):
        visitor.visit(f"/products/{n}?batching=1", analytics=False)
    sidecar.wait_for_inbox(6)
    batches = [(method, status) for method, path, status in sidecar.responses if path == "/v1/b"]
    assert ("OPTIONS", 204) in batches and ("POST", 200) in batches
    assert not [path for _m, path, _s in sidecar.responses if path in ("/v1/p", "/v1/t")]
    sidecar.process()
    assert visitor.visit("/?batching=1", analytics=False) == "1"
    assert offline.external == []


def _onsite_rows(sidecar: StandIn) -> list[dict]:
    from crmrules_web_tracker.onsite import open_onsite

    return open_onsite(onsite_file(sidecar.settings)).rows()


ONSITE_OFFERS = Path(__file__).resolve().parents[2] / "rules" / "onsite-offers"


@pytest.fixture
def offers_shop(tmp_path: Path, analytics_next_umd: Path):
    """The shop in front of a deployment running the shipped rules/onsite-offers pack."""

    from tests.support.browser import serve
    from tests.web_tracker.site import shop_app
    from tests.web_tracker.stack import WRITE_KEY, settings_for

    if not (ONSITE_OFFERS / "pack.yaml").is_file():
        pytest.skip("rules/onsite-offers is not in this checkout")
    with StandIn(settings_for(tmp_path, [ONSITE_OFFERS])) as stack:
        with serve(shop_app(analytics_next_umd, stack.url, WRITE_KEY)) as shop:
            yield stack, shop


def test_the_onsite_offers_pack_shows_its_secret_coupon_once(browser_thread: BrowserThread, offline: GuardedContext,
                                                             offers_shop) -> None:
    stack, shop = offers_shop
    visitor = Visitor(browser_thread, offline, shop)
    for _ in range(3):  # the same product, three times ("Product Viewed" with product_id → product)
        assert visitor.visit("/products/7") == "0"
    stack.wait_for_inbox(6)
    stack.process()
    assert visitor.visit("/") == "1"
    [text] = visitor.banners()
    assert "비밀 쿠폰" in text and "SECRET10" in text
    visitor.screenshot(str(SCREENSHOT_DIR / "crmrules-onsite-offers.png"))
    wait_until(lambda: _onsite_rows(stack)[0]["shown_at"] is not None, 5, lambda: "never marked shown")
    assert visitor.reload() == "0"
    for _ in range(2):  # views four and five: nothing new
        assert visitor.visit("/products/7") == "0"
    stack.wait_for_inbox(6 + 1 + 1 + 1 + 2 * 2)
    stack.process()
    assert visitor.visit("/products/8") == "0"
    assert [d.outcome for d in stack.store.all_decisions() if d.rule == "secret-coupon"].count("fired") == 1
    assert len(_onsite_rows(stack)) == 1
