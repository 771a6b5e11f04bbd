"""Timers that carry the event that set them, limits per key (`per:`), and goals that record only real cancels.

Every case runs through Pipeline on a real SQLite file, so timer payloads, state and decisions make the round
trip through the store.
"""

from __future__ import annotations

import pytest

from crmrules.language import PackError, load_pack
from tests.core.helpers import T0, days, ev, fired, hours, pack_file, pipeline


def actions(p, rule):
    return [a for d in fired(p, rule) for a in d.actions]


# ------------------------------------------------------------------ 1. the anchor event on timers

REMINDER = """
    rules:
      - id: reminder
        when:
          all:
            - no: {event: contract_signed, after: contract_opened, within: 24h, same: deal_id}
            - event: {type: contract_opened, where: {tier: gold}}
        then:
          - task: {title: "{{ event.contract_name }} 서명 대기 ({{ event.deal_id }}, {{ event.type }})"}
        limit: every time
"""


def test_an_absence_timer_shows_its_rule_the_event_that_set_it(tmp_path):
    p = pipeline(tmp_path, REMINDER)
    p.replay([ev("contract_opened", 0, deal_id="D-1", contract_name="공급 계약서", tier="gold"),
              ev("contract_opened", 1, deal_id="D-2", contract_name="Silver deal", tier="silver")],
             until=(T0 + days(3)).timestamp())
    [decision] = fired(p, "reminder")
    assert decision.actions[0].title == "공급 계약서 서명 대기 (D-1, contract_opened)"
    assert decision.event_ids  # the anchor's event id, for explain


def test_the_anchor_does_not_make_an_absence_true_early_or_after_the_signature(tmp_path):
    p = pipeline(tmp_path, REMINDER)
    p.replay([ev("contract_opened", 0, deal_id="D-1", contract_name="A", tier="gold"),
              ev("contract_signed", 23, deal_id="D-1")], until=(T0 + hours(23.9)).timestamp())
    assert fired(p, "reminder") == []
    p.advance((T0 + days(3)).timestamp())
    assert fired(p, "reminder") == []


def test_other_rules_matched_on_a_timer_do_not_see_its_event(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: reminder
            when: {no: {event: contract_signed, after: contract_opened, within: 24h}}
            then: [{tag: 리마인드}]
          - id: on-open
            when:
              all:
                - event: contract_opened
                - lead: {tags: {contains: 리마인드}}
            then: [{task: 열람 확인}]
            limit: every time
    """)
    p.replay([ev("contract_opened", 0, contract_name="A")], until=(T0 + days(2)).timestamp())
    assert [a.tag for a in actions(p, "reminder")] == ["리마인드"]
    assert fired(p, "on-open") == []  # the tag changed on the timer, which is not a contract_opened


def test_quiet_and_date_timers_carry_an_event_too(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: gone-quiet
            when: {no: {event: login, for: 14d}}
            then: [{task: "마지막 로그인 기기 {{ event.device }}"}]
          - id: renewal-soon
            when: {lead: {renewal_date: {within_next: 30d}}}
            then: [{task: "갱신 예정 (최근 이벤트 {{ event.type }})"}]
    """)
    p.replay([ev("record_update", 0, renewal_date="2026-05-01"),
              ev("login", 1, device="아이폰"), ev("page_view", 2, path="/help")],
             until=(T0 + days(70)).timestamp())
    assert [a.title for a in actions(p, "gone-quiet")] == ["마지막 로그인 기기 아이폰"]
    assert [a.title for a in actions(p, "renewal-soon")] == ["갱신 예정 (최근 이벤트 page_view)"]


# ------------------------------------------------------------------ 2. per-key limits

def test_once_per_ticket_fires_once_for_each_ticket_and_timers_use_the_anchor_value(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: escalate
            when: {no: {event: ticket_replied, after: ticket_created, within: 1h, same: ticket_id}}
            then: [{task: "티켓 {{ event.ticket_id }} 에스컬레이션"}]
            limit: once
            per: ticket_id
    """)
    p.replay([ev("ticket_created", 0, ticket_id="T-1"), ev("ticket_created", 0.5, ticket_id="T-2"),
              ev("ticket_created", 2, ticket_id="T-1"),  # the same ticket reported again: not twice
              ev("ticket_created", 3, ticket_id="T-3"), ev("ticket_replied", 3.5, ticket_id="T-3")],
             until=(T0 + days(1)).timestamp())
    assert [a.title for a in actions(p, "escalate")] == ["티켓 T-1 에스컬레이션", "티켓 T-2 에스컬레이션"]
    [blocked] = [d for d in p.store.all_decisions() if d.outcome == "blocked"]
    assert "for ticket_id 'T-1'" in blocked.reason and "limit 'once'" in blocked.reason


def test_cooldown_and_at_most_count_per_value(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: accepted
            when: {event: quote_accepted}
            then: [{task: "계약서 {{ event.deal_id | default('없음', true) }}"}]  # a gap in a title is refused
            limit: at most 2 per 30d
            cooldown: 1h
            per: deal_id
    """)
    p.replay([ev("quote_accepted", 0, deal_id="D-1"), ev("quote_accepted", 0.5, deal_id="D-1"),  # cooldown
              ev("quote_accepted", 0.6, deal_id="D-2"),  # another deal: its own count
              ev("quote_accepted", 2, deal_id="D-1"), ev("quote_accepted", 4, deal_id="D-1"),  # 3rd: limit
              ev("quote_accepted", 5), ev("quote_accepted", 7)])  # without deal_id: one shared count
    assert [a.title for a in actions(p, "accepted")] == ["계약서 D-1", "계약서 D-2", "계약서 D-1", "계약서 없음", "계약서 없음"]
    reasons = [d.reason for d in p.store.all_decisions() if d.outcome == "blocked"]
    assert len(reasons) == 2 and "cooldown 1h for deal_id 'D-1'" in reasons[0]
    assert "limit 'at most 2 per 30d' for deal_id 'D-1'" in reasons[1]
    p.replay([ev("quote_accepted", 8)])
    assert "for deal_id None" in p.store.all_decisions()[-1].reason


def test_per_a_record_property(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: overdue
            about: deal
            when: {deal: {close_date: {past: true}}}
            then: [{task: "마감일 {{ deal.close_date }} 경과"}]
            limit: once
            per: deal.close_date
    """)
    d = {"kind": "deal", "ids": {"hubspot_id": "deal-1"}}
    p.replay([ev("record_update", 0, kind="deal", ids=d["ids"], close_date="2026-03-05"),
              ev("record_update", days(5), kind="deal", ids=d["ids"], close_date="2026-03-20"),
              ev("record_update", days(5.5), kind="deal", ids=d["ids"], note="x")],
             until=(T0 + days(40)).timestamp())
    assert [a.title for a in actions(p, "overdue")] == ["마감일 2026-03-05 경과", "마감일 2026-03-20 경과"]


@pytest.mark.parametrize("rule, message", [
    ("per: [ticket_id]", "`per:` names one property"),
    ("per: ticket id", "`per:` names one property"),
    ("limit: every time\n    per: ticket_id", "fires every time and has no cooldown"),
])
def test_per_errors_are_located(tmp_path, rule, message):
    path = pack_file(tmp_path, f"""rules:
  - id: r
    when: {{event: ticket_created}}
    then: [{{tag: t}}]
    {rule}
""")
    with pytest.raises(PackError) as err:
        load_pack(path)
    text = str(err.value)
    assert message in text and (f"{path}:5:" in text or f"{path}:6:" in text), text


def test_per_is_a_known_field_for_did_you_mean(tmp_path):
    path = pack_file(tmp_path, """rules:
  - id: r
    when: {event: ticket_created}
    then: [{tag: t}]
    pre: ticket_id
""")
    with pytest.raises(PackError) as err:
        load_pack(path)
    assert "did you mean 'per'" in str(err.value) and f"{path}:5:5" in str(err.value)


# ------------------------------------------------------------------ 3. goals record only real cancels

GOAL = """
    rules:
      - id: survey
        when: {event: ticket_solved}
        then:
          - message: {channel: email, body: 설문}
            after: 3d
        goal: {event: ticket_created}
        limit: every time
      - id: reminder
        when: {no: {event: contract_signed, after: contract_opened, within: 24h}}
        then: [{task: 서명 확인}]
        goal: {event: contract_signed}
"""


def goals(p):
    return [d for d in p.store.all_decisions() if d.reason.startswith("goal reached")]


def test_a_goal_with_nothing_waiting_records_nothing(tmp_path):
    p = pipeline(tmp_path, GOAL)
    p.replay([ev("ticket_created", 0), ev("contract_signed", 1)], until=(T0 + days(5)).timestamp())
    assert goals(p) == []


def test_a_goal_that_cancels_a_delayed_action_or_a_timer_is_recorded(tmp_path):
    p = pipeline(tmp_path, GOAL)
    p.replay([ev("ticket_solved", 0), ev("ticket_created", 24),  # cancels the survey waiting in the outbox
              ev("contract_opened", 25), ev("contract_signed", 30),  # cancels the reminder's timer
              ev("ticket_created", 31), ev("contract_signed", 32)],  # nothing left to cancel
             until=(T0 + days(6)).timestamp())
    assert [d.rule for d in goals(p)] == ["survey", "reminder"]
    assert {r["status"] for r in p.store.outbox_rows() if r["action_type"] == "message"} == {"cancelled"}
    assert fired(p, "reminder") == []


def test_a_goal_after_the_delayed_action_went_records_nothing(tmp_path):
    p = pipeline(tmp_path, GOAL)
    p.replay([ev("ticket_solved", 0), ev("ticket_created", days(4))], until=(T0 + days(6)).timestamp())
    assert goals(p) == []
