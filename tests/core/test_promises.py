"""The decide stage's promises (issue 16, "Promises" and the consent findings of "Explain and run").

Each test names its finding (or says it guards a fix); the findings' tests fail on the code before the fix.
Real parts: the real `Pipeline` on a real SQLite file. The send-time check with the dispatcher and the
acceptance test through `crmrules serve` are in tests/hubspot/test_consent_at_send.py.
"""

from __future__ import annotations

import datetime as dt

from .helpers import T0, ev, fired, hours, pipeline

KST = dt.timezone(dt.timedelta(hours=9))


def decisions(p, rule=None, outcome=None):
    return [d for d in p.store.all_decisions()
            if (rule is None or d.rule == rule) and (outcome is None or d.outcome == outcome)]


def outbox(p, action_type=None):
    return [r for r in p.store.outbox_rows() if action_type is None or r["action_type"] == action_type]


# ---------------------------------------------------------------- 1. a consent stop is a blocked decision

WELCOME = """
    rules:
      - id: welcome
        when: {event: signup}
        then:
          - {tag: welcomed}
          - {message: {channel: email, subject: 환영합니다, body: 가입 감사합니다}}
"""


def test_consent_stop_is_a_blocked_decision_with_its_reason(tmp_path):
    """Finding "a consent stop is recorded as `fired (consent: …)`": the docs promise every stop is a blocked
    decision with the reason. The rule's other actions still fire; the stopped message is a blocked decision."""

    p = pipeline(tmp_path, WELCOME)
    p.replay([ev("record_update", -1, unsubscribed=True), ev("signup", 0)])
    [done] = decisions(p, "welcome", "fired")
    assert [a.type for a in done.actions] == ["tag"]
    assert "consent" not in done.reason
    [stop] = decisions(p, "welcome", "blocked")
    assert stop.reason == "consent: lead unsubscribed, email message not sent"
    assert stop.actions == [] and stop.id != done.id
    assert [r["action_type"] for r in outbox(p)] == ["tag"]


def test_a_rule_whose_only_action_is_stopped_is_one_blocked_decision(tmp_path):
    """Guard for the fix of "consent stop recorded as fired": with nothing left to do the rule is one blocked
    decision, not a blocked one and an empty fired one (passes before the fix too)."""

    p = pipeline(tmp_path, """
        rules:
          - id: news
            when: {event: signup}
            then: [{message: {channel: email, subject: 소식, body: 안녕하세요}}]
    """)
    p.replay([ev("record_update", -1, email_unsubscribed="true"), ev("signup", 0)])
    assert [(d.outcome, d.reason) for d in decisions(p, "news")] == [
        ("blocked", "consent: lead unsubscribed, email message not sent")]


# ---------------------------------------------------------------- 2. the email identity in templates

def test_email_that_is_only_an_identity_renders_in_templates(tmp_path):
    """Finding "an email that is only an identity renders `{{ lead.email }}` empty": the lead's email id is
    what templates see as `lead.email` when no record field says otherwise."""

    p = pipeline(tmp_path, """
        rules:
          - id: call
            when: {event: signup}
            then: [{task: "{{ lead.email }} 님께 연락"}]
    """)
    p.replay([ev("signup", 0, email="yujin.kim@example.com")])
    [decision] = fired(p, "call")
    assert decision.actions[0].title == "yujin.kim@example.com 님께 연락"


def test_a_record_field_email_wins_over_the_identity(tmp_path):
    """Guard for the fix of "email only an identity": a CRM's own `email` field is still what templates show
    (passes before the fix too; it stops the fix from overriding the record)."""

    p = pipeline(tmp_path, """
        rules:
          - id: call
            when: {event: signup}
            then: [{task: "{{ lead.email }}"}]
    """)
    update = ev("record_update", -1)
    update.properties["email"] = "Kim.Yujin@Example.com"  # as the CRM spells it; the id is kept lower-case
    p.replay([update, ev("signup", 0)])
    assert fired(p, "call")[0].actions[0].title == "Kim.Yujin@Example.com"


# ---------------------------------------------------------------- 3. opt-out honoured at send time

DELAYED = """
    messages:
      quiet_hours: {from: "21:00", to: "08:00", timezone: Asia/Seoul}
    rules:
      - id: follow-up
        when: {event: signup}
        then:
          - {message: {channel: email, subject: 안녕하세요, body: 다시 연락드립니다}, after: 1d}
          - {task: 담당자 배정}
      - id: answer
        when: {event: question}
        then: [{message: {channel: email, subject: 답변, body: 문의 감사합니다}}]
      - id: banner
        when: {event: question}
        then: [{message: {channel: onsite, body: 상담 예약}, after: 1d}]
"""


def test_unsubscribing_cancels_a_delayed_message_with_a_decision(tmp_path):
    """Finding "opt-out is not honoured for messages already waiting" (a delayed message): unsubscribing
    cancels it, with a blocked decision saying so; the task decided with it is not a message and still goes."""

    p = pipeline(tmp_path, DELAYED)
    p.replay([ev("signup", 0, id="signup-1"), ev("record_update", 2, id="optout-1", unsubscribed=True)], live=True)
    [message] = outbox(p, "message")
    assert message["status"] == "cancelled"
    assert "unsubscribed" in message["last_error"]
    assert [r["status"] for r in outbox(p, "task")] == ["pending"]
    [stop] = decisions(p, "follow-up", "blocked")
    assert stop.trigger == "optout-1"
    assert stop.reason == "consent: lead unsubscribed, email message not sent; 1 waiting message cancelled"


def test_opting_out_cancels_a_message_held_by_quiet_hours(tmp_path):
    """Finding "opt-out is not honoured for messages already waiting" (a quiet-hours hold): a message held
    from 22:00 to 08:00 is cancelled when the lead sets `email_opt_in` false at 23:00."""

    p = pipeline(tmp_path, DELAYED)
    p.replay([ev("question", 13), ev("record_update", 14, email_opt_in=False)], live=True)  # 22:00 and 23:00 in Seoul
    [held] = [r for r in outbox(p, "message") if r["rule"].endswith("/answer")]
    assert dt.datetime.fromtimestamp(held["due_at"], KST).hour == 8
    assert held["status"] == "cancelled"
    [stop] = decisions(p, "answer", "blocked")
    assert "email_opt_in is false" in stop.reason and "cancelled" in stop.reason
    # an on-site banner needs no consent: it still waits
    assert [r["status"] for r in outbox(p, "message") if r["rule"].endswith("/banner")] == ["pending"]


def test_a_replay_cancels_its_replayed_messages_too(tmp_path):
    """A replay (`crmrules run` without --live) keeps its actions as `replayed`: an opt-out in the same replay
    cancels those too, so the replay shows what a live run would have sent."""

    p = pipeline(tmp_path, DELAYED)
    p.replay([ev("signup", 0, id="signup-1"), ev("record_update", 2, id="optout-1", unsubscribed=True)])
    assert [r["status"] for r in outbox(p, "message")] == ["cancelled"]
    assert [r["status"] for r in outbox(p, "task")] == ["replayed"]


def test_consent_unchanged_cancels_nothing(tmp_path):
    """Finding "opt-out not honoured": only a change of consent cancels; another field change leaves the
    waiting message alone (and records nothing)."""

    p = pipeline(tmp_path, DELAYED)
    p.replay([ev("signup", 0), ev("record_update", 2, company="에이스상사", email_opt_in=True)], live=True)
    assert [r["status"] for r in outbox(p, "message")] == ["pending"]
    assert decisions(p, outcome="blocked") == []


def test_merging_in_an_unsubscribed_record_cancels_what_waits(tmp_path):
    """Finding "opt-out not honoured": consent that arrives by a merge (the other record had unsubscribed,
    and its value is the newer) stops the waiting message too."""

    p = pipeline(tmp_path, DELAYED)
    p.replay([ev("signup", 0, email="kim@example.com"),
              ev("record_update", 1, email="kim.work@example.com", unsubscribed=True),
              ev("merge", 2, email="kim@example.com", merged_ids={"email": "kim.work@example.com"})])
    assert [r["status"] for r in outbox(p, "message")] == ["cancelled"]
    assert len(decisions(p, "follow-up", "blocked")) == 1


# ---------------------------------------------------------------- 4. shadow mode changes nothing live

def test_shadow_rule_never_takes_a_live_rules_group_slot(tmp_path):
    """Finding "shadow mode changes live behaviour: a shadow rule takes its group's slot from a live rule":
    the live rule fires as if the shadow rule were not there; the shadow rule records what it would do."""

    p = pipeline(tmp_path, """
        rules:
          - id: candidate
            mode: shadow
            group: first-contact
            priority: 10
            when: {event: signup}
            then: [{tag: candidate}]
          - id: current
            group: first-contact
            when: {event: signup}
            then: [{tag: current}]
    """)
    p.replay([ev("signup", 0)])
    assert [d.outcome for d in decisions(p, "current")] == ["fired"]
    assert [d.outcome for d in decisions(p, "candidate")] == ["shadow"]
    assert [r["action_type"] for r in outbox(p)] == ["tag"]


def test_shadow_rule_is_blocked_in_its_group_like_a_live_one(tmp_path):
    """Finding "shadow takes the group slot": in its own ledger a shadow rule still loses to a live rule of
    higher priority, and says so (it would not have fired live either)."""

    p = pipeline(tmp_path, """
        rules:
          - id: current
            group: first-contact
            priority: 10
            when: {event: signup}
            then: [{tag: current}]
          - id: candidate
            mode: shadow
            group: first-contact
            when: {event: signup}
            then: [{tag: candidate}]
    """)
    p.replay([ev("signup", 0)])
    assert [d.outcome for d in decisions(p, "current")] == ["fired"]
    [blocked] = decisions(p, "candidate")
    assert blocked.outcome == "blocked" and "'current' took this trigger" in blocked.reason


def test_shadow_rule_respects_its_own_limit(tmp_path):
    """Finding "shadow mode ignores its own limit": `once per lead` in shadow is one shadow decision, then
    blocked by the limit, exactly as it would be live."""

    p = pipeline(tmp_path, """
        rules:
          - id: candidate
            mode: shadow
            when: {event: page_view}
            then: [{tag: seen}]
            limit: once per lead
    """)
    p.replay([ev("page_view", 0), ev("page_view", 1), ev("page_view", 2)])
    assert [d.outcome for d in decisions(p, "candidate")] == ["shadow", "blocked", "blocked"]
    assert "limit 'once per lead' reached" in decisions(p, "candidate", "blocked")[0].reason
    assert outbox(p) == []


def test_shadow_limit_is_its_own_ledger(tmp_path):
    """Finding "shadow changes live behaviour": a shadow rule's firings count only for shadow; the lead's
    live state (limits of the live twin, tags, message cap) is untouched."""

    p = pipeline(tmp_path, """
        rules:
          - id: candidate
            mode: shadow
            when: {event: page_view}
            then: [{tag: seen}]
            cooldown: 1d
            limit: every time
    """)
    p.replay([ev("page_view", 0), ev("page_view", 1), ev("page_view", 30)])
    assert [d.outcome for d in decisions(p, "candidate")] == ["shadow", "blocked", "shadow"]
    state = p.store.load_entity(p.store.find_entity("kim@example.com"))
    assert state["tags"] == [] and state["messages"] == []
    assert all(key.startswith("shadow:") for key in state["fired"])


# ---------------------------------------------------------------- 5. blind spots

def test_email_opt_in_false_stops_a_non_advertising_message(tmp_path):
    """Blind spot "`email_opt_in: false` ignored for a non-advertising message" (docs: `<channel>_opt_in`
    false blocks the channel; transactional messages need only that the lead has not opted out). A lead whose
    consent is unknown still gets the receipt, so the test tells the two apart."""

    p = pipeline(tmp_path, """
        rules:
          - id: receipt
            when: {event: paid}
            then: [{message: {channel: email, subject: 영수증, body: 결제 완료}}]
    """)
    p.replay([ev("record_update", -1, email="no@x.com", email_opt_in=False), ev("paid", 0, email="no@x.com"),
              ev("record_update", -1, email="yes@x.com", email_opt_in="true"), ev("paid", 0, email="yes@x.com"),
              ev("paid", 0, email="unknown@x.com")])
    [stop] = decisions(p, "receipt", "blocked")
    assert stop.reason == "consent: email_opt_in is false, message not sent"
    assert p.store.find_entity("no@x.com") == stop.entity_id
    assert len(fired(p, "receipt")) == 2
    assert len(outbox(p, "message")) == 2


QUIET = """
    messages:
      quiet_hours: {from: "21:00", to: "08:00", timezone: Asia/Seoul}
    rules:
      - id: answer
        when: {event: question}
        then: [{message: {channel: email, subject: 답변, body: 문의 감사합니다}}]
        limit: every time
"""


def test_quiet_hours_use_the_recipients_zone(tmp_path):
    """Blind spot "quiet hours ignoring the recipient's zone": the pack's quiet hours are 21:00-08:00 in
    Seoul, but the lead lives in New York (UTC-5 in March 2026). 12:00 in Seoul is 22:00 the night before in
    New York: held until 08:00 New York time. 22:00 in Seoul is 08:00 in New York: not held. Ignoring the
    zone gets both wrong."""

    p = pipeline(tmp_path, QUIET)
    p.replay([ev("record_update", -1, timezone="America/New_York"),
              ev("question", 3, id="q-noon"), ev("question", 13, id="q-night")])
    rows = sorted(outbox(p), key=lambda r: r["due_at"])
    noon = T0 + hours(3)
    night = T0 + hours(13)
    new_york_eight = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert [r["due_at"] for r in rows] == [new_york_eight.timestamp(), night.timestamp()]
    assert new_york_eight > noon  # held, not sent at noon in Seoul


def test_quiet_hours_fall_back_to_the_packs_zone(tmp_path):
    """Blind spot "quiet hours zone": a lead without a zone is judged in the pack's (22:00 Seoul is held)."""

    p = pipeline(tmp_path, QUIET)
    p.replay([ev("question", 13)])
    [row] = outbox(p)
    assert row["due_at"] == (T0 + hours(23)).timestamp()  # 08:00 the next day in Seoul
