"""Nothing twice: redelivery and replay are harmless. Identities: many ids, one lead. Korean text intact."""

from __future__ import annotations

import json
import sqlite3

from crmrules import SQLiteStore

from .helpers import days, ev, fired, hours, pipeline

RULES = """
pack: t
rules:
  - id: welcome
    when: {event: signup}
    then:
      - tag: 신규 가입
      - set: {등급: "VIP 후보 {{ lead.name }}"}
      - message: {channel: email, subject: "{{ lead.name }}님 환영합니다", body: "안녕하세요 {{ lead.first_name }}님 👋"}
    limit: every time
  - id: seen-pricing
    when: {count: {event: page_view, where: {path: /pricing}, within: 7d, at_least: 2}}
    then: [{tag: hot}]
"""


def outbox(p):
    return p.store.outbox_rows()


def test_delivering_an_event_twice_makes_one_action(tmp_path):
    p = pipeline(tmp_path, RULES)
    update = ev("record_update", -1, first_name="유진", last_name="김", email_opt_in=True)
    signup = ev("signup", 0, id="hs-123")
    assert p.ingest([update, signup]) == [True, True]
    p.process_pending()
    assert p.ingest([signup]) == [False]
    p.process_pending()
    assert len(fired(p, "welcome")) == 1
    assert len(outbox(p)) == 3


def test_replaying_a_file_twice_into_one_store_adds_nothing(tmp_path):
    events = [ev("record_update", -1, first_name="유진", last_name="김"), ev("signup", 0),
              ev("page_view", 1, path="/pricing"), ev("page_view", 30, path="/pricing")]
    p = pipeline(tmp_path, RULES)
    p.replay(events)
    before = {r["key"] for r in outbox(p)}
    again = pipeline(tmp_path, RULES)  # a new process on the same file
    again.replay(events)
    assert {r["key"] for r in outbox(again)} == before
    assert len(again.store.all_decisions()) == len(p.store.all_decisions())


def test_korean_text_round_trips_into_actions(tmp_path):
    p = pipeline(tmp_path, RULES)
    p.replay([ev("record_update", -1, first_name="유진", last_name="김", email_opt_in=True), ev("signup", 0)])
    rows = {r["action_type"]: json.loads(r["body"])["action"] for r in outbox(p)}
    assert rows["tag"]["tag"] == "신규 가입"
    assert rows["set"]["properties"] == {"등급": "VIP 후보 김유진"}
    assert rows["message"]["subject"] == "김유진님 환영합니다"
    assert rows["message"]["body"] == "안녕하세요 유진님 👋"
    raw = sqlite3.connect(tmp_path / "store.sqlite").execute("SELECT body FROM outbox WHERE action_type='message'").fetchone()[0]
    assert "김유진님 환영합니다" in raw  # stored as UTF-8 text, not escaped


def test_anonymous_visitor_who_identifies_is_one_lead(tmp_path):
    p = pipeline(tmp_path, RULES)
    p.replay([
        ev("page_view", 0, ids={"anonymous_id": "anon-1"}, path="/pricing"),
        ev("record_update", 1, ids={"anonymous_id": "anon-1", "email": "kim@example.com"}, first_name="유진"),
        ev("page_view", 2, email="kim@example.com", path="/pricing"),
    ])
    leads = p.store.entities("lead")
    assert len(leads) == 1
    assert leads[0][2]["identities"] == {"anonymous_id": "anon-1", "email": "kim@example.com"}
    assert len(fired(p, "seen-pricing")) == 1  # the anonymous view counted for the known lead


def test_two_known_leads_merge_when_one_event_names_both(tmp_path):
    p = pipeline(tmp_path, RULES)
    p.replay([
        ev("page_view", 0, ids={"hubspot_id": "101"}, path="/pricing"),
        ev("page_view", 1, email="kim@example.com", path="/pricing"),
        ev("merge", 2, ids={"hubspot_id": "101"}, merged_ids={"email": "kim@example.com"}),
        ev("page_view", 3, ids={"hubspot_id": "101"}, path="/pricing"),
    ])
    leads = p.store.entities("lead")
    assert len(leads) == 1
    assert p.store.find_entity("kim@example.com") == p.store.find_entity("101") == leads[0][0]
    assert len(fired(p, "seen-pricing")) == 1


def test_stale_property_change_does_not_overwrite_newer(tmp_path):
    p = pipeline(tmp_path, RULES)
    p.ingest([ev("record_update", 5, lifecycle="customer")])
    p.process_pending()
    p.ingest([ev("record_update", 1, lifecycle="lead", phone="010")])
    p.process_pending()
    state = p.store.load_entity(p.store.find_entity("kim@example.com"))
    assert state["props"]["lifecycle"] == "customer"
    assert state["props"]["phone"] == "010"  # an older value for a field we did not have is still news


def test_far_more_than_1024_leads_and_300_properties(tmp_path):
    """durable-rules holds 1,024 live sessions per ruleset and 254 properties per message; we hold neither."""
    p = pipeline(tmp_path, RULES)
    wide = {f"prop_{i}": i for i in range(300)}
    events = []
    for n in range(1500):
        email = f"lead{n}@example.com"
        events += [ev("record_update", 0, email=email, **wide), ev("page_view", 1, email=email, path="/pricing"),
                   ev("page_view", 2, email=email, path="/pricing")]
    p.replay(events)
    assert len(fired(p, "seen-pricing")) == 1500
    assert len(p.store.entities("lead")) == 1500


def test_pii_encrypted_at_rest_with_a_key(tmp_path):
    from crmrules import Pipeline, SQLiteStore
    from crmrules.language import load_pack

    from .helpers import pack_file

    pack = load_pack(pack_file(tmp_path, RULES))
    path = tmp_path / "sealed.sqlite"
    p = Pipeline(SQLiteStore(path, key="correct horse battery staple"), [pack])
    p.replay([ev("record_update", -1, first_name="유진", last_name="김", phone="010-1234-5678"), ev("signup", 0)])
    raw = path.read_bytes() + (tmp_path / "sealed.sqlite-wal").read_bytes()
    for secret in ("kim@example.com", "유진".encode("utf-8").decode("utf-8"), "010-1234-5678"):
        assert secret.encode("utf-8") not in raw
    reopened = SQLiteStore(path, key="correct horse battery staple")
    entity = reopened.find_entity("KIM@example.com")
    assert reopened.load_entity(entity)["props"]["phone"] == "010-1234-5678"
    assert [d.rule for d in reopened.all_decisions()] == ["welcome"]
    import pytest

    with pytest.raises(PermissionError, match="CRMRULES_STORE_KEY"):
        SQLiteStore(path).all_decisions()
