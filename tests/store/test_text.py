"""Korean (and other non-ASCII) text comes back exactly from every role, also after reopening the store."""

from __future__ import annotations

import datetime as dt
from typing import Callable

from crmrules.models import CreateTask, Decision, Event, OutboxItem
from crmrules.store import Store

from .make import T0, timer

NAME = "김민준"
EMAIL = "민준@한국.kr"
TEXT = "안녕하세요, 견적서를 보내드립니다 🙂 — ①②③ «quoted» \u00e9\u0301"


def test_korean_text_round_trips_through_every_role(opener: Callable[[], Store]):
    store = opener()
    incoming = Event(id="이벤트-1", source="test", type="문의",
                     occurred_at=dt.datetime.fromtimestamp(T0, dt.timezone.utc),
                     subject={"kind": "lead", "ids": {"email": EMAIL, "kakao_id": NAME}},
                     properties={"메모": TEXT, "이름": NAME})
    state = {"props": {"name": NAME, "메모": TEXT}, "tags": ["신규"]}
    decided = Decision(id="결정-1", rule="환영", pack="팩", rule_version="v1", entity_id="l_kim",
                       entity_kind="lead", trigger="이벤트-1", at=T0, outcome="blocked", reason=f"조용한 시간: {TEXT}",
                       facts={"이름": NAME}, actions=[CreateTask(title=TEXT, body=NAME)])
    action = OutboxItem(idempotency_key="키-1", decision_id="결정-1", rule="환영", entity_id="l_kim",
                        entity_kind="lead", identities={"email": EMAIL}, action=CreateTask(title=TEXT), due_at=T0,
                        record={"이름": NAME})

    assert store.accept_many([incoming]) == [True]
    assert store.accept_many([incoming]) == [False]
    store.link("lead", [("email", EMAIL), ("kakao_id", NAME)], "l_kim")
    store.link("lead", [("kakao_id", "이서연")], "l_lee")  # as long as NAME, in other letters
    store.save_entity("l_kim", "lead", state)
    store.upsert_timers([timer("l_kim", "팩/환영", f"없음:{NAME}", T0, leaf="s0", 메모=TEXT)])
    store.record([decided], [action])
    store.set_meta("커서", TEXT)
    store.finish_many([seq for seq, _ in store.pending()])
    store.claim_due(T0, owner="a")
    store.mark_retry("키-1", T0, f"429: {TEXT}")
    store.close()

    again = opener()
    assert again.events_of("l_kim") == [incoming]
    assert again.lookup_links("lead", [("kakao_id", NAME), ("email", EMAIL)]) == {
        ("kakao_id", NAME): ("l_kim", True), ("email", EMAIL): ("l_kim", True)}
    assert again.find_entity(EMAIL) == again.find_entity(NAME) == "l_kim"
    assert again.find_entity("이서연") == "l_lee"
    assert again.load_entity("l_kim") == state
    assert again.entities() == [("l_kim", "lead", state)]
    assert again.due_timers(T0) == [{"entity_id": "l_kim", "rule_key": "팩/환영", "key": f"없음:{NAME}",
                                     "due_at": T0, "leaf": "s0", "payload": {"메모": TEXT}}]
    assert again.timers_of("l_kim")[0]["key"] == f"없음:{NAME}"
    assert again.decisions_of("l_kim") == [decided]
    (row,) = again.outbox_rows()
    assert (row["key"], row["rule"], row["last_error"]) == ("키-1", "환영", f"429: {TEXT}")
    assert OutboxItem.model_validate_json(row["body"]) == action
    assert again.claim_due(T0, owner="a")[0][0] == action
    assert again.get_meta("커서") == TEXT
