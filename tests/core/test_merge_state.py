"""Two records found to be one person: their state merges whole, including claims and quiet-timer anchors."""

from __future__ import annotations

from crmrules.decide.state import EntityState
from crmrules.pipeline import merge_into

from .helpers import T0, days, ev, fired, pipeline


def test_claims_and_anchors_survive_a_merge():
    dst = EntityState("lead-1", "lead", identities={"email": "kim@example.com"},
                      claims={"email": "boss@example.com"},
                      anchors={"quiet-a": {"type": "login", "id": "e1", "at": 100.0, "props": {"device": "아이폰"}}})
    src = EntityState("lead-2", "lead", identities={"anonymous_id": "anon-9"},
                      claims={"email": "other@example.com", "phone": "010-1234-5678", "anonymous_id": "anon-9"},
                      anchors={"quiet-a": {"type": "login", "id": "e7", "at": 50.0, "props": {"device": "PC"}},
                               "quiet-b": {"type": "visit", "id": "e8", "at": 70.0, "props": {}}})
    merge_into(dst, src)
    # dst's own claim wins on the same kind; a claim the merged record now owns as an id is no claim
    assert dst.claims == {"email": "boss@example.com", "phone": "010-1234-5678"}
    # per leaf, the later anchor: dst's login at 100 over src's at 50; src's only anchor of quiet-b is kept
    assert dst.anchors["quiet-a"]["props"] == {"device": "아이폰"}
    assert dst.anchors["quiet-b"]["id"] == "e8"

    later = EntityState("lead-3", "lead", anchors={"quiet-a": {"type": "login", "id": "e9", "at": 200.0, "props": {}}})
    merge_into(dst, later)
    assert dst.anchors["quiet-a"]["id"] == "e9"


def test_a_silence_seen_by_the_merged_record_keeps_its_event(tmp_path):
    """The login happened on the visitor's profile; after the CRM tells us it is kim, the quiet timer shows it."""
    p = pipeline(tmp_path, """
        rules:
          - id: gone-quiet
            when: {no: {event: login, for: 10d}}
            then: [{task: "마지막 로그인 기기 {{ event.device }}"}]
    """)
    p.replay([ev("page_view", 0, path="/"),  # kim, by email: the older record
              ev("login", days(1), ids={"anonymous_id": "anon-9"}, device="갤럭시"),  # a newer record
              ev("record_update", days(2), ids={"email": "kim@example.com", "anonymous_id": "anon-9"})],
             until=(T0 + days(30)).timestamp())
    titles = [a.title for d in fired(p, "gone-quiet") for a in d.actions]
    assert titles == ["마지막 로그인 기기 갤럭시"]
