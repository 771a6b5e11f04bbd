"""Issue 16, "Tests:" finding: a case could not say that an action did NOT happen, that a delayed action was
(not) cancelled, that a message goes out AT a given time (held by quiet hours), what a decision's outcome and
reason were, nor hold several records at once (an account and its contacts, two leads that merge, a trusted
and an untrusted source).

Every new assertion is shown both ways: a case that is true passes and the same case made false fails, so no
assertion here can pass vacuously."""

from __future__ import annotations

import pytest

from .packtests import crmrules, line_of, write_pack


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def outcome(tmp_path, body: str, name: str = "case") -> tuple[int, str]:
    """Run one case (its YAML after `- name:`) through `crmrules test`; (exit code, output)."""

    lines = body.strip("\n").splitlines()
    indented = "\n".join("    " + line for line in lines)
    folder = write_pack(tmp_path / name, f"tests:\n  - name: {name}\n{indented}\n")
    out = crmrules("test", str(folder))
    return out.exit_code, out.output


def passes(tmp_path, body: str) -> None:
    code, output = outcome(tmp_path, body, "true-case")
    assert code == 0, output


def fails(tmp_path, body: str, *says: str) -> str:
    code, output = outcome(tmp_path, body, "false-case")
    assert code == 1, output
    assert "1 failed" in output, output
    for text in says:
        assert text in output, output
    return output


KIM = "lead: {email: kim@example.com, first_name: 유진, last_name: 김}"


# ------------------------------------------------------------------ absence of an action

def test_actions_not_says_a_rule_did_not_do_something(tmp_path):
    """Finding: a case cannot say "this action did not happen"."""

    passes(tmp_path, f"""
{KIM}
events: [{{at: +0d, event: signup}}]
expect:
  - rule: welcome
    actions: [{{tag: new}}]
    actions_not: [{{tag: vip}}, message]
""")
    fails(tmp_path, f"""
{KIM}
events: [{{at: +0d, event: signup}}]
expect:
  - rule: welcome
    actions_not: [{{tag: new}}]
""", "welcome: expected no tag: new", "got tag: new")


def test_expect_no_actions_says_no_rule_did_something(tmp_path):
    """Finding: a case cannot say "this action did not happen" — across every rule of the pack."""

    passes(tmp_path, f"""
{KIM}
events: [{{at: +0d, event: page_view}}]
expect_no_actions: [message, task]
""")
    passes(tmp_path, f"""
{KIM}
events: [{{at: +0d, event: page_view}}]
expect_no_actions: true
""")
    fails(tmp_path, f"""
{KIM}
events: [{{at: +0d, event: signup}}]
expect_no_actions: [{{message: {{subject: 안녕하세요}}}}]
""", "expected no message", "nurture")
    fails(tmp_path, f"""
{KIM}
events: [{{at: +0d, event: signup}}]
expect_no_actions: true
""", "expected no actions", "welcome")


# ------------------------------------------------------------------ cancelled or not

def test_a_delayed_action_was_cancelled_or_not(tmp_path):
    """Finding: a case cannot say "this delayed action was not cancelled" (nor that it was)."""

    bought = f"""
{KIM}
events: [{{at: +0d, event: signup}}, {{at: +1d, event: purchase}}]
"""
    waiting = f"""
{KIM}
events: [{{at: +0d, event: signup}}]
"""
    passes(tmp_path, bought + "expect: [{rule: nurture, actions: [{message: {after: 3d, cancelled: true}}]}]")
    passes(tmp_path, waiting + "expect: [{rule: nurture, actions: [{message: {after: 3d, cancelled: false}}]}]")
    fails(tmp_path, bought + "expect: [{rule: nurture, actions: [{message: {cancelled: false}}]}]",
          "cancelled")
    fails(tmp_path, waiting + "expect: [{rule: nurture, actions: [{message: {cancelled: true}}]}]",
          "pending")
    # and as an absence: no message that still goes out
    passes(tmp_path, bought + "expect: [{rule: nurture, actions_not: [{message: {cancelled: false}}]}]")


# ------------------------------------------------------------------ when a message goes out

def test_a_message_held_by_quiet_hours_goes_out_at_their_end(tmp_path):
    """Finding: a case cannot say "this message goes out at 08:00" (held by quiet hours)."""

    night = f"""
{KIM}
events: [{{at: +13h, event: question}}]          # 22:00 in Seoul: quiet hours until 08:00
"""
    day = f"""
{KIM}
events: [{{at: +1h, event: question}}]           # 10:00
"""
    passes(tmp_path, night + 'expect: [{rule: answer, actions: [{message: {held_until: "+1d08:00"}}]}]')
    passes(tmp_path, night + 'expect: [{rule: answer, actions: [{message: {at: "2026-01-06T08:00:00+09:00",'
                             ' held: true}}]}]')
    passes(tmp_path, day + 'expect: [{rule: answer, actions: [{message: {at: "+1h", held: false}}]}]')
    fails(tmp_path, night + 'expect: [{rule: answer, actions: [{message: {at: "+1d09:00"}}]}]',
          "2026-01-06 08:00 KST")
    fails(tmp_path, night + "expect: [{rule: answer, actions: [{message: {held: false}}]}]", "held")
    fails(tmp_path, day + 'expect: [{rule: answer, actions: [{message: {held_until: "+1d08:00"}}]}]')


# ------------------------------------------------------------------ outcome and reason

def test_outcome_and_reason_of_a_decision(tmp_path):
    """Finding: a decision's outcome and reason are asserted, and a wrong reason fails."""

    views = f"""
{KIM}
events: [{{at: +0d, event: page_view}}, {{at: +1d, event: page_view}}, {{at: +2d, event: page_view}}]
"""
    passes(tmp_path, views + "expect: [{rule: hot, times: 1}, {rule: hot, outcome: blocked, reason_contains: limit}]")
    fails(tmp_path, views + "expect: [{rule: hot, outcome: blocked, reason_contains: cooldown}]",
          "expected hot to be blocked (reason containing 'cooldown')", "limit 'once per lead' reached")


# ------------------------------------------------------------------ several records

ACCOUNT = """
records:
  acme: {account: {hubspot_id: c-1, name: 에이스상사, tier: gold}}
  kim: {lead: {email: kim@example.com, first_name: 유진}, with: acme}
  lee: {lead: {email: lee@example.com}}
events:
  - {at: +0d, about: kim, event: signup}
  - {at: +1d, lead: lee, event: signup}
"""


def test_an_account_and_its_contacts(tmp_path):
    """Finding: a case cannot hold several records: an account and its contacts."""

    passes(tmp_path, ACCOUNT + "expect: [{rule: vip-contact, about: kim}, {rule: vip-contact, about: lee, times: 0},"
                               " {rule: welcome, about: lee}]")
    fails(tmp_path, ACCOUNT + "expect: [{rule: vip-contact, about: lee}]", "vip-contact", "lee")
    fails(tmp_path, ACCOUNT + "expect: [{rule: welcome, about: acme}]", "acme")


MERGE = """
records:
  kim: {lead: {email: kim@example.com}}
  kim-work: {lead: {email: yujin.kim@work.example}}
events:
  - {at: +0d, about: kim, event: page_view}
  - {at: +1h, about: kim-work, event: page_view}
"""


def test_two_leads_that_merge(tmp_path):
    """Finding: a case cannot hold several records: two leads that merge (their history adds up)."""

    merged = MERGE + "  - {at: +2h, merge: kim-work, into: kim}\n  - {at: +3h, about: kim, event: page_view}\n"
    apart = MERGE + "  - {at: +3h, about: kim, event: page_view}\n"
    passes(tmp_path, merged + "expect: [{rule: returning, about: kim}, {rule: returning, about: kim-work}]")
    passes(tmp_path, apart + "expect: [{rule: returning, times: 0}]")
    fails(tmp_path, apart + "expect: [{rule: returning, about: kim}]", "returning")


TRUST = """
records:
  kim: {lead: {email: kim@example.com}}
  visitor: {lead: {anonymous_id: v-1}, source: web}
events:
  - {at: +0d, about: kim, event: form_submitted}
  - {at: +0d, about: visitor, event: form_submitted, source: web}
"""


def test_a_trusted_and_an_untrusted_source(tmp_path):
    """Finding: a case cannot hold a trusted and an untrusted source (`source: web`)."""

    passes(tmp_path, TRUST + "expect:\n  - {rule: crm-note, about: kim}\n"
                             "  - {rule: crm-note, about: visitor, outcome: blocked, reason_contains: tracker}\n"
                             "  - {rule: crm-note, about: visitor, times: 0}\n")
    fails(tmp_path, TRUST + "expect: [{rule: crm-note, about: visitor}]", "visitor")


def test_record_names_are_checked(tmp_path):
    """A misspelt record name in an event or an expectation is a located error, not a new lead."""

    folder = write_pack(tmp_path, "tests:\n  - name: x\n" + "\n".join(
        "    " + line for line in (ACCOUNT + "expect: [{rule: welcome, about: kmi}]").strip("\n").splitlines()) + "\n")
    out = crmrules("check", str(folder))
    assert out.exit_code == 1, out.output
    assert "did you mean 'kim'" in out.output
    assert f"cases.yaml:{line_of(folder, 'about: kmi')}:" in out.output


def test_records_may_have_korean_names(tmp_path):
    passes(tmp_path, """
records:
  에이스상사: {account: {hubspot_id: c-1, name: 에이스상사, tier: gold}}
  김유진: {lead: {email: kim@example.com, first_name: 유진, last_name: 김}, with: 에이스상사}
events: [{at: +0d, about: 김유진, event: signup}]
expect:
  - {rule: vip-contact, about: 김유진}
  - {rule: welcome, about: 김유진, actions: [{task: {title: 김유진 환영 전화}}]}
""")
    fails(tmp_path, """
records:
  김유진: {lead: {email: kim@example.com}}
  이민수: {lead: {email: lee@example.com}}
events: [{at: +0d, lead: 김유진, event: signup}]
expect: [{rule: welcome, about: 이민수}]
""", "expected welcome to be fired for 이민수")
