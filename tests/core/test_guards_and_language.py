"""The rest of the language at work: limits, cooldowns, groups, shadow, consent, caps, quiet hours,
sequences, relative dates, business hours, score chaining and decay, plugin condition functions."""

from __future__ import annotations

import datetime as dt

from crmrules.language import load_pack

from .helpers import T0, days, ev, fired, hours, pack_file, pipeline


def decisions(p, rule=None, outcome=None):
    return [d for d in p.store.all_decisions() if (rule is None or d.rule == rule) and (outcome is None or d.outcome == outcome)]


def test_limit_once_per_lead_per_period(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: r
            when: {event: login}
            then: [{tag: x}]
            limit: once per lead per 7d
    """)
    p.replay([ev("login", days(0)), ev("login", days(3)), ev("login", days(8))])
    assert [d.outcome for d in decisions(p, "r")] == ["fired", "blocked", "fired"]
    assert "limit 'once per lead per 7d' reached" in decisions(p, "r", "blocked")[0].reason


def test_default_is_once_per_lead_and_every_time_is_explicit(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: once
            when: {event: blog_read}
            then: [{score: +1}]
          - id: each
            when: {event: blog_read}
            then: [{score: +1}]
            limit: every time
    """)
    p.replay([ev("blog_read", i) for i in range(3)])
    assert len(fired(p, "once")) == 1 and len(fired(p, "each")) == 3
    assert p.store.load_entity(p.store.find_entity("kim@example.com"))["score"] == 4


def test_at_most_and_cooldown(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: r
            when: {event: ping}
            then: [{tag: x}]
            limit: at most 2 per 1d
            cooldown: 2h
    """)
    p.replay([ev("ping", h) for h in (0, 1, 3, 5, 25)])
    assert [d.outcome for d in decisions(p, "r")] == ["fired", "blocked", "fired", "blocked", "fired"]
    assert "cooldown 2h" in decisions(p, "r", "blocked")[0].reason


def test_group_lets_the_higher_priority_rule_win(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: generic
            group: first-contact
            when: {event: signup}
            then: [{tag: generic}]
          - id: manufacturing
            group: first-contact
            priority: 10
            when: {all: [{event: signup}, {lead: {industry: 제조}}]}
            then: [{tag: manufacturing}]
    """)
    p.replay([ev("record_update", -1, industry="제조"), ev("signup", 0)])
    assert [d.rule for d in fired(p)] == ["manufacturing"]
    assert "took this trigger" in decisions(p, "generic", "blocked")[0].reason


def test_shadow_decides_and_pushes_nothing(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: r
            mode: shadow
            when: {event: signup}
            then: [{tag: x}, {score: 10}]
    """)
    p.replay([ev("signup", 0)])
    assert [d.outcome for d in decisions(p, "r")] == ["shadow"]
    assert decisions(p, "r")[0].actions  # what it would have done
    assert p.store.outbox_rows() == []
    assert p.store.load_entity(p.store.find_entity("kim@example.com"))["score"] == 0


MESSAGES = """
    messages:
      max_per_person: 2 per 7d
      quiet_hours: {from: "21:00", to: "08:00", timezone: Asia/Seoul}
    rules:
      - id: news
        when: {event: ping}
        then: [{message: {channel: email, subject: 소식, body: 안녕하세요, advertising: true}}]
        limit: every time
      - id: receipt
        when: {event: paid}
        then: [{message: {channel: email, subject: 영수증, body: 결제 완료}}]
        limit: every time
"""


def test_consent_blocks_and_is_recorded(tmp_path):
    p = pipeline(tmp_path, MESSAGES)
    p.replay([ev("ping", 0, email="unknown@x.com"), ev("paid", 1, email="unknown@x.com"),
              ev("record_update", 0, email="out@x.com", unsubscribed=True), ev("paid", 1, email="out@x.com")])
    reasons = [d.reason for d in decisions(p, outcome="blocked")]
    assert any("advertising message not sent" in r for r in reasons)  # unknown consent: no ads
    assert any("unsubscribed" in r for r in reasons)  # opted out: nothing at all
    assert len(fired(p, "receipt")) == 1  # a receipt to an unknown-consent lead is fine


def test_message_cap_and_quiet_hours(tmp_path):
    p = pipeline(tmp_path, MESSAGES)
    # T0 is 09:00 Seoul; +13h is 22:00, inside quiet hours
    p.replay([ev("record_update", -1, email_opt_in=True, night_ad_opt_in=True), ev("ping", 13), ev("ping", 14), ev("ping", 15)])
    rows = sorted(p.store.outbox_rows(), key=lambda r: r["due_at"])
    assert len(rows) == 2
    due = dt.datetime.fromtimestamp(rows[0]["due_at"], dt.timezone(dt.timedelta(hours=9)))
    assert (due.hour, due.minute) == (8, 0)  # deferred to the end of quiet hours
    assert "message cap 2 per 7d reached" in decisions(p, "news", "blocked")[0].reason


def test_korean_ads_are_labelled_and_wait_for_morning(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: ad
            when: {event: ping}
            then: [{message: {channel: email, subject: 특가 안내, body: 할인, advertising: true, locale: ko}}]
    """)
    p.replay([ev("record_update", -1, email_opt_in=True), ev("ping", 13)])  # 22:00 KST
    action = fired(p, "ad")[0].actions[0]
    assert action.subject == "(광고) 특가 안내"
    due = dt.datetime.fromtimestamp(p.store.outbox_rows()[0]["due_at"], dt.timezone(dt.timedelta(hours=9)))
    assert due.hour == 8


def test_sequence_a_then_b_within(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: seq
            when: {sequence: {steps: [ebook_download, {event: page_view, where: {path: /pricing}}], within: 1h}}
            then: [{tag: x}]
    """)
    p.replay([ev("page_view", 0, email="a@x.com", path="/pricing"), ev("ebook_download", 0.5, email="a@x.com"),
              ev("ebook_download", 0, email="b@x.com"), ev("page_view", 0.9, email="b@x.com", path="/pricing"),
              ev("ebook_download", 0, email="c@x.com"), ev("page_view", 1.5, email="c@x.com", path="/pricing")])
    assert [p.store.load_entity(d.entity_id)["identities"]["email"] for d in fired(p)] == ["b@x.com"]


def test_relative_dates_fire_when_the_day_comes(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: renewal
            about: account
            when: {account: {renewal_date: {within_next: 60d}}}
            then: [{task: {title: "갱신 캠페인 시작"}}]
    """)
    renewal = (T0 + days(100)).date().isoformat()
    p.replay([ev("record_update", 0, kind="account", ids={"hubspot_id": "c1"}, renewal_date=renewal)],
             until=(T0 + days(39)).timestamp())
    assert fired(p) == []
    p.advance((T0 + days(41)).timestamp())
    assert len(fired(p, "renewal")) == 1


def test_no_login_for_30_days(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: dormant
            when: {no: {event: login, for: 30d}}
            then: [{tag: 휴면}]
    """)
    p.replay([ev("login", days(0)), ev("login", days(20))], until=(T0 + days(49)).timestamp())
    assert fired(p) == []
    p.advance((T0 + days(51)).timestamp())
    assert len(fired(p, "dormant")) == 1


def test_business_hours_sla(tmp_path):
    p = pipeline(tmp_path, """
        calendar: {timezone: Asia/Seoul, days: [mon, tue, wed, thu, fri], hours: "09:00-18:00"}
        rules:
          - id: sla
            when: {no: {event: ticket_replied, after: ticket_created, within: 1bh, same: ticket_id}}
            then: [{task: {title: 에스컬레이션, priority: high}}]
            limit: every time
    """)
    friday_1730 = days(4) + hours(8.5)
    p.replay([ev("ticket_created", friday_1730, ticket_id="t1"),
              ev("ticket_created", friday_1730, ticket_id="t2"),
              ev("ticket_replied", days(7) + hours(0.2), ticket_id="t2")],  # Monday 09:12
             until=(T0 + days(7) + hours(1)).timestamp())
    got = fired(p, "sla")
    assert len(got) == 1
    assert dt.datetime.fromtimestamp(got[0].at, dt.timezone(dt.timedelta(hours=9))).strftime("%a %H:%M") == "Mon 09:30"


def test_score_threshold_chains_and_decays(tmp_path):
    p = pipeline(tmp_path, """
        scoring:
          decay: {points: 10, every: 7d}
        rules:
          - id: points
            when: {event: page_view}
            then: [{score: +40}]
            limit: every time
          - id: to-sales
            when: {lead: {score: {at_least: 80}}}
            then: [{task: {title: 영업 연락}}]
    """)
    p.replay([ev("page_view", days(0)), ev("page_view", days(14) + hours(1))])
    assert fired(p, "to-sales") == []  # 40 decayed to 20 over two weeks, +40 = 60
    p.replay([ev("page_view", days(15))])
    assert len(fired(p, "to-sales")) == 1  # 100 ≥ 80 in the same evaluation that added the points


def test_goal_cancels_a_delayed_message(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: nudge
            when: {event: proposal_opened}
            then:
              - message: {channel: email, subject: 제안서, body: "확인하셨나요?"}
                after: 2d
            goal: {event: contract_signed}
    """)
    p.replay([ev("record_update", -1, email_opt_in=True), ev("proposal_opened", 0), ev("contract_signed", 30)])
    assert [r["status"] for r in p.store.outbox_rows()] == ["cancelled"]


def test_plugin_condition_function(tmp_path):
    path = pack_file(tmp_path, """
        rules:
          - id: biz
            when: {lead: {work_email: {business_email: true}}}
            then: [{tag: b2b}]
    """)
    functions = {"business_email": lambda value, want: (str(value).split("@")[-1] not in ("gmail.com", "naver.com")) == want}
    pack = load_pack(path, condition_functions=functions)
    from crmrules import ManualClock, Pipeline, SQLiteStore

    p = Pipeline(SQLiteStore(tmp_path / "s.sqlite"), [pack], clock=ManualClock(0))
    p.replay([ev("record_update", 0, email="a@naver.com", work_email="a@naver.com"),
              ev("record_update", 0, email="b@corp.kr", work_email="b@corp.kr")])
    assert [p.store.load_entity(d.entity_id)["identities"]["email"] for d in fired(p)] == ["b@corp.kr"]


def test_tracker_events_alone_cannot_write_to_the_crm(tmp_path):
    p = pipeline(tmp_path, """
        rules:
          - id: hot
            when: {count: {event: page_view, within: 7d, at_least: 2}}
            then: [{tag: hot}, {task: {title: 전화}}, {set: {lifecycle: sql}}, {message: {channel: onsite, body: 쿠폰}}]
            limit: every time
    """)
    web = [ev("page_view", h, ids={"anonymous_id": "a-1"}) for h in (0, 1)]
    for e in web:
        e.source = "web"
    p.replay(web)
    [decision] = fired(p, "hot")
    assert sorted(a.type for a in decision.actions) == ["message", "tag"]
    assert "only tracker events are known for this lead" in decision.reason
    # The CRM reports this browser's anonymous id with the lead: it vouches that the visitor is the lead.
    crm = ev("record_update", 2, ids={"email": "real@x.com", "anonymous_id": "a-1"}, first_name="진짜")
    more = ev("page_view", 3, ids={"anonymous_id": "a-1"})
    more.source = "web"
    p.replay([crm, more])
    assert sorted(a.type for a in fired(p, "hot")[1].actions) == ["message", "set", "tag", "task"]
    assert len(p.store.entities("lead")) == 1
