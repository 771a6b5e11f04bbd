"""`same:` on count and sum: "3 to 5 views of one product", counted per value of an event property."""

from __future__ import annotations

import pytest

from crmrules.language import PackError, load_pack

from .helpers import days, ev, fired, pack_file, pipeline

VIEWS = """
pack: t
rules:
  - id: keeps-coming-back
    when:
      all:
        - event: product_view
        - count: {event: product_view, same: product, within: 7d, at_least: 3, at_most: 5}
    then: [{tag: "{{ event.product }} 관심"}]
    limit: every time
"""


@pytest.mark.parametrize("matcher", ["durable", "python"])
def test_counted_for_the_product_of_the_view_being_decided(tmp_path, matcher):
    p = pipeline(tmp_path, VIEWS, matcher)
    p.replay([ev("product_view", days(0), product="책상"), ev("product_view", days(1), product="의자"),
              ev("product_view", days(2), product="책상"), ev("product_view", days(3), product="책상"),
              ev("product_view", days(4), product="의자")])
    got = fired(p, "keeps-coming-back")
    assert len(got) == 1  # the third 책상 view; not the second 의자 view, though 책상 has three by then
    assert got[0].actions[0].tag == "책상 관심"
    assert got[0].facts["count of product_view with the same product within 7d ≥ 3 and ≤ 5"] == 3


def test_three_views_of_three_products_are_not_three_views_of_one(tmp_path):
    p = pipeline(tmp_path, VIEWS)
    p.replay([ev("product_view", days(i), product=name) for i, name in enumerate(["a", "b", "c", "a", "b"])])
    assert fired(p) == []


def test_at_most_holds_per_product_and_the_window_slides(tmp_path):
    p = pipeline(tmp_path, VIEWS)
    # six views of `a` in 6 days: fires at the 3rd, 4th and 5th, not at the 6th
    p.replay([ev("product_view", days(i), product="a") for i in range(6)])
    assert len(fired(p)) == 3
    # a week later the old views are out of the window: two new ones are two, the third is three
    p.replay([ev("product_view", days(14), product="a"), ev("product_view", days(15), product="a")])
    assert len(fired(p)) == 3
    p.replay([ev("product_view", days(16), product="a")])
    assert len(fired(p)) == 4


def test_views_without_the_property_count_for_no_product(tmp_path):
    p = pipeline(tmp_path, VIEWS)
    p.replay([ev("product_view", days(0)), ev("product_view", days(1)), ev("product_view", days(2), product="a"),
              ev("product_view", days(3))])
    assert fired(p) == []


ANY_VALUE = """
pack: t
rules:
  - id: at-checkout
    when:
      all:
        - event: checkout_started
        - count: {event: product_view, same: product, within: 7d, at_least: 2}
    then: [{tag: undecided}]
  - id: never-twice
    when:
      all:
        - event: checkout_started
        - not: {count: {event: product_view, same: product, within: 7d, at_least: 2}}
    then: [{tag: browsing}]
"""


@pytest.mark.parametrize("matcher", ["durable", "python"])
def test_another_trigger_asks_whether_any_one_product_meets_the_bounds(tmp_path, matcher):
    p = pipeline(tmp_path, ANY_VALUE, matcher)
    p.replay([ev("product_view", days(0), product="a"), ev("product_view", days(1), product="b"),
              ev("checkout_started", days(2), email="kim@example.com")])
    assert [d.rule for d in fired(p)] == ["never-twice"]  # two views, but of two products

    (tmp_path / "q").mkdir()
    q = pipeline(tmp_path / "q", ANY_VALUE, matcher)
    q.replay([ev("product_view", days(0), product="a"), ev("product_view", days(1), product="b"),
              ev("product_view", days(1), product="a"), ev("checkout_started", days(2))])
    assert [d.rule for d in fired(q)] == ["at-checkout"]


BOUNDS = """
pack: t
rules:
  - id: one-product-three-times
    when: {all: [{event: checkout_started}, {count: {event: product_view, same: product, within: 7d, at_least: 3}}]}
    then: [{tag: focused}]
  - id: one-product-once
    when: {all: [{event: checkout_started}, {count: {event: product_view, same: product, within: 7d, between: [1, 1]}}]}
    then: [{tag: glanced}]
"""


def test_each_rule_picks_its_own_value(tmp_path):
    """Without an event naming the product, "some product" depends on the bounds: 'a' for one rule, 'b' for the other."""
    p = pipeline(tmp_path, BOUNDS)
    p.replay([ev("product_view", days(0), product="a"), ev("product_view", days(1), product="a"),
              ev("product_view", days(1), product="b"), ev("product_view", days(2), product="a"),
              ev("checkout_started", days(3))])
    assert sorted(d.rule for d in fired(p)) == ["one-product-once", "one-product-three-times"]


SUM = """
pack: t
rules:
  - id: big-store-customer
    when:
      sum: {event: order_placed, field: amount, same: store, within: 30d, at_least: 100000}
    then: [{tag: "{{ event.store }} 단골"}]
"""


def test_sum_per_value(tmp_path):
    p = pipeline(tmp_path, SUM)
    p.replay([ev("order_placed", days(0), store="강남", amount=60000), ev("order_placed", days(1), store="홍대", amount=60000)])
    assert fired(p) == []  # 120000 in all, but not in one store
    p.replay([ev("order_placed", days(2), store="강남", amount="40000")])
    assert len(fired(p)) == 1


@pytest.mark.parametrize("count, message", [
    ("{event: product_view, same: product, at_least: 3}",
     "3:47: rules[0].when.count.same: a count with `same:` needs `within:` (e.g. `within: 7d`)"),
    ("{event: product_view, same: {a: 1}, within: 7d, at_least: 3}",
     "3:47: rules[0].when.count.same: `same:` names event properties, e.g. `same: ticket_id`"),
    ("{event: product_view, sme: product, within: 7d, at_least: 3}",
     "3:41: rules[0].when.count.sme: unknown field 'sme'; did you mean 'same'?"),
])
def test_same_errors_are_located(tmp_path, count, message):
    path = pack_file(tmp_path, f"rules:\n  - id: a\n    when: {{count: {count}}}\n    then: [{{tag: y}}]\n")
    with pytest.raises(PackError) as caught:
        load_pack(path)
    assert any(str(e).startswith(f"{path}:{message}") for e in caught.value.errors), str(caught.value)
