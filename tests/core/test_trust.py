"""The trust verdict (crmrules.decide.trust): one place decides what an event or a timer may unlock."""

from __future__ import annotations

from crmrules import ManualClock, Pipeline, SQLiteStore
from crmrules.decide.trust import TrustPolicy
from crmrules.language import load_pack
from crmrules.models import AddTag, CreateTask, SendMessage

from .helpers import T0, ev, fired, pack_file


def test_an_event_is_privileged_from_a_trusted_source_or_by_a_vouched_visitor_id_of_a_trusted_lead():
    policy = TrustPolicy({"hubspot"})
    crm = policy.of_event("hubspot", vouched=False, entity_trusted=False)
    assert crm.privileged and crm.source and not crm.guest
    vouched = policy.of_event("web", vouched=True, entity_trusted=True)
    assert vouched.privileged and not vouched.source and not vouched.guest
    guest = policy.of_event("web", vouched=False, entity_trusted=True)
    assert not guest.privileged and guest.guest
    stranger = policy.of_event("web", vouched=False, entity_trusted=False)
    assert not stranger.privileged and not stranger.guest and not stranger.source
    assert not policy.of_event("web", vouched=True, entity_trusted=False).privileged


def test_a_timer_keeps_its_events_trust_only_while_the_entity_is_trusted():
    policy = TrustPolicy({"hubspot"})
    assert policy.of_timer({"trusted": True}, entity_trusted=True).privileged
    assert not policy.of_timer({"trusted": False}, entity_trusted=True).privileged
    assert not policy.of_timer({"trusted": True}, entity_trusted=False).privileged
    assert policy.of_timer({"type": "x"}, entity_trusted=True).privileged  # a date or quiet timer: the entity's
    assert not policy.of_timer(None, entity_trusted=False).privileged


def test_without_the_privilege_only_behaviour_and_on_site_messages_are_allowed():
    trust = TrustPolicy({"hubspot"}).of_event("web", vouched=False, entity_trusted=False)
    assert trust.allows(AddTag(tag="hot"))
    assert trust.allows(SendMessage(channel="onsite", body="쿠폰"))
    assert not trust.allows(SendMessage(channel="email", body="hi"))
    assert not trust.allows(CreateTask(title="전화"))
    assert "only tracker events are known for this lead" in trust.refusal()


def test_the_pipelines_trusted_sources_decide_what_an_event_may_do(tmp_path):
    path = pack_file(tmp_path, """
        rules:
          - id: call
            when: {event: form_submit}
            then: [{tag: lead}, {task: {title: 전화}}]
    """)

    def actions(name: str, source: str, trusted: frozenset[str] | None = None) -> list[str]:
        p = Pipeline(SQLiteStore(tmp_path / f"{name}.sqlite"), [load_pack(path)], clock=ManualClock(T0.timestamp()),
                     trusted_sources=trusted)
        event = ev("form_submit", 0, ids={"email": "kim@example.com"}).model_copy(update={"source": source})
        p.replay([event])
        return sorted(a.type for d in fired(p, "call") for a in d.actions)

    # By default the loaded plugins' declarations: the core's `test` source and HubSpot's are trusted.
    assert actions("default", "test") == ["tag", "task"]
    assert actions("hubspot", "hubspot") == ["tag", "task"]
    assert actions("narrowed", "test", frozenset({"hubspot"})) == ["tag"]


def test_a_source_not_declared_trusted_cannot_unlock_crm_actions_whatever_its_name(tmp_path):
    """Issue 8: trust was a hard-coded set of untrusted names, so a public collector under any other name was
    trusted (fail-open). Now only a declaration makes a source trusted; names that sound official, that a
    plugin left undeclared, or that no plugin registered, may only tag, score and show on-site messages."""

    path = pack_file(tmp_path, """
        rules:
          - id: call
            when: {event: form_submit}
            then: [{tag: lead}, {task: {title: 전화}}, {message: {channel: email, body: 안녕하세요}}]
    """)
    for n, source in enumerate(["collector", "crm", "salesforce_public", "hubspot-forms", "import2", "web"]):
        p = Pipeline(SQLiteStore(tmp_path / f"s{n}.sqlite"), [load_pack(path)], clock=ManualClock(T0.timestamp()))
        event = ev("form_submit", 0, ids={"email": "kim@example.com"}).model_copy(update={"source": source})
        p.replay([event])
        decided = [d for d in p.store.all_decisions() if d.rule.endswith("call")]
        assert decided, source
        assert sorted(a.type for d in decided for a in d.actions) == ["tag"], source
        assert {r["action_type"] for r in p.store.outbox_rows(limit=100)} <= {"tag"}, source
