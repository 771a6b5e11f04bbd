"""Issue 2 acceptance: windows count on event time; absence fires once the clock passes the wait."""

from __future__ import annotations

import json
import subprocess
import sys

from .helpers import T0, days, ev, fired, hours, pipeline

HOT = """
pack: t
rules:
  - id: pricing-twice
    when:
      count: {event: page_view, where: {path: /pricing}, within: 7d, at_least: 2}
    then: [{tag: hot}]
"""


def test_two_views_six_days_apart_fire(tmp_path):
    p = pipeline(tmp_path, HOT)
    p.replay([ev("page_view", days(0), path="/pricing"), ev("page_view", days(6), path="/pricing")])
    assert len(fired(p, "pricing-twice")) == 1


def test_two_views_eight_days_apart_do_not(tmp_path):
    p = pipeline(tmp_path, HOT)
    p.replay([ev("page_view", days(0), path="/pricing"), ev("page_view", days(8), path="/pricing")])
    assert fired(p) == []


def test_where_filters_the_window(tmp_path):
    p = pipeline(tmp_path, HOT)
    p.replay([ev("page_view", days(0), path="/blog"), ev("page_view", days(1), path="/pricing")])
    assert fired(p) == []


def test_late_event_counts_in_its_own_window(tmp_path):
    """Delivered out of order: the day-1 view arrives after the day-6 one and still makes two within 7 days."""
    p = pipeline(tmp_path, HOT)
    p.ingest([ev("page_view", days(6), path="/pricing")])
    p.process_pending()
    p.ingest([ev("page_view", days(1), path="/pricing")])
    p.process_pending()
    assert len(fired(p)) == 1


ABSENCE = """
pack: t
rules:
  - id: contract-reminder
    when:
      no: {event: contract_signed, after: contract_opened, within: 24h}
    then:
      - message: {channel: email, subject: 계약 안내, body: "서명을 기다리고 있습니다"}
    goal: {event: contract_signed}
"""


def test_absence_fires_after_24h_without_signature(tmp_path):
    p = pipeline(tmp_path, ABSENCE)
    p.replay([ev("contract_opened", 0)], until=(T0 + hours(23.9)).timestamp())
    assert fired(p) == []
    p.advance((T0 + hours(24.1)).timestamp())
    assert len(fired(p, "contract-reminder")) == 1
    p.advance((T0 + days(30)).timestamp())
    assert len(fired(p, "contract-reminder")) == 1


def test_absence_never_fires_when_signed_at_23h(tmp_path):
    p = pipeline(tmp_path, ABSENCE)
    p.replay([ev("contract_opened", 0), ev("contract_signed", 23)], until=(T0 + days(5)).timestamp())
    assert fired(p) == []
    assert p.store.timers_of(p.store.find_entity("kim@example.com")) == []


def test_replay_decides_as_living_through(tmp_path):
    """Live (events one at a time, clock moved by hand) and replay give the same decisions."""
    events = [ev("contract_opened", 0, email="a@x.com"), ev("contract_opened", 1, email="b@x.com"),
              ev("contract_signed", 20, email="b@x.com"), ev("page_view", 30, email="a@x.com")]
    live = pipeline(tmp_path / "live", ABSENCE) if (tmp_path / "live").mkdir() is None else None
    for e in events:
        live.advance(e.ts())
        live.ingest([e])
        live.process_pending()
    live.advance((T0 + days(3)).timestamp())
    replayed = pipeline(tmp_path / "replay", ABSENCE) if (tmp_path / "replay").mkdir() is None else None
    replayed.replay(events, until=(T0 + days(3)).timestamp())

    def summary(p):
        return sorted((p.store.load_entity(d.entity_id)["identities"]["email"], d.rule, d.outcome, d.at)
                      for d in p.store.all_decisions())

    assert summary(live) == summary(replayed)
    assert [s[0] for s in summary(live) if s[2] == "fired"] == ["a@x.com"]


def test_cli_run_replays_a_jsonl_file(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "hot.yaml").write_text(HOT, encoding="utf-8")
    lines = [
        {"id": "1", "type": "page_view", "at": "2026-03-02T09:00:00+09:00", "lead": {"email": "a@x.com"}, "props": {"path": "/pricing"}},
        {"id": "2", "type": "page_view", "at": "2026-03-08T09:00:00+09:00", "lead": {"email": "a@x.com"}, "props": {"path": "/pricing"}},
        {"id": "3", "type": "page_view", "at": "2026-03-02T09:00:00+09:00", "lead": {"email": "b@x.com"}, "props": {"path": "/pricing"}},
        {"id": "4", "type": "page_view", "at": "2026-03-10T09:00:00+09:00", "lead": {"email": "b@x.com"}, "props": {"path": "/pricing"}},
        {"id": "5", "type": "page_view", "at": "2026-03-10T09:00:00", "lead": {"email": "c@x.com"}},
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n", encoding="utf-8")
    store = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "crmrules.cli", "run", "--rules", str(rules), "--events", str(events), "--store", str(store)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 1, out.stderr  # rejected lines: the replay says so in its exit status
    assert "events: 4 processed" in out.stdout, out.stdout
    assert "2 rejected" in out.stdout
    assert "events.jsonl:5: occurred_at" in out.stderr and "time zone" in out.stderr
    assert "events.jsonl:6: not JSON" in out.stderr
    assert "actions: 1 tag" in out.stdout
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert "events: 0 processed, 4 already seen" in again.stdout, again.stdout
    assert "actions: none" in again.stdout


def test_cli_run_reads_csv(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "hot.yaml").write_text(HOT, encoding="utf-8")
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        "id,type,occurred_at,email,path,title\n"
        "1,page_view,2026-03-02T09:00:00+09:00,a@x.com,/pricing,가격 안내\n"
        "2,page_view,2026-03-04T09:00:00+09:00,a@x.com,/pricing,가격 안내\n"
        "3,page_view,not a time,a@x.com,/pricing,\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "crmrules.cli", "run", "--rules", str(rules), "--events", str(csv_file),
                          "--store", str(tmp_path / "s.sqlite")], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    assert "events: 2 processed" in out.stdout and "1 rejected" in out.stdout
    assert "events.csv:4: occurred_at" in out.stderr
    assert "actions: 1 tag" in out.stdout
