"""Issue 16, "Explain and run": `crmrules explain`, `run`, `outbox list` as an admin runs them (the real CLI in a
subprocess, real SQLite stores, the real dispatcher). Each test names the finding it proves fixed."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from crmrules.config import Settings
from crmrules.outbox.dispatcher import Dispatcher
from crmrules.store import open_store

PACK = """
pack: sales
messages:
  quiet_hours: {from: "21:00", to: "08:00", timezone: Asia/Seoul}
scoring:
  decay: {points: 10, every: 30d}
segments:
  hot:
    any:
      - count: {event: page_view, where: {path: /pricing}, within: 7d, at_least: 2}
      - happened: {event: demo_request, within: 30d}
rules:
  - id: hot-lead
    when:
      all:
        - segment: hot
        - not: {lead: {unsubscribed: true}}
        - lead: {email_opt_in: true}
    then: [{tag: 관심 높음}, {score: 30}, {message: {subject: 안녕하세요, body: 곧 연락드리겠습니다}}]
  - id: welcome
    when: {event: signup}
    then: [{tag: new}, {score: 5}]
  - id: no-reply
    when: {no: {event: reply, after: signup, within: 30d}}
    then: [{task: {title: "{{ lead.name }}님 다시 연락"}}]
  - id: opted-out
    when:
      all:
        - event: page_view
        - not: {lead: {email_opt_in: true}}
    then: [{tag: x}]
"""

KIM = "kim@example.com"
EVENTS = [
    {"id": "1", "type": "record_update", "at": "2026-03-02T09:00:00+09:00", "lead": KIM,
     "props": {"first_name": "유진", "last_name": "김", "email_opt_in": True}},
    {"id": "2", "type": "signup", "at": "2026-03-02T10:00:00+09:00", "lead": KIM},
    {"id": "3", "type": "demo_request", "at": "2026-03-02T22:00:00+09:00", "lead": KIM},  # in quiet hours
    {"id": "4", "type": "page_view", "at": "2026-04-20T10:00:00+09:00", "lead": KIM, "props": {"path": "/blog"}},
]


def crmrules(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "crmrules.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


@pytest.fixture()
def replayed(tmp_path):
    """The pack and events above replayed into a store; returns (folder, store, rules)."""

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "sales.yaml").write_text(textwrap.dedent(PACK), encoding="utf-8")
    write_events(tmp_path / "events.jsonl", EVENTS)
    store = tmp_path / "s.sqlite"
    out = crmrules("run", "--rules", str(rules), "--events", str(tmp_path / "events.jsonl"), "--store", str(store))
    assert out.returncode == 0, out.stderr
    return tmp_path, str(store), str(rules)


def write_events(path, events):
    path.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in events) + "\n", encoding="utf-8")


def explain(replayed, *args):
    _folder, store, rules = replayed
    return crmrules("explain", KIM, *args, "--store", store, "--rules", rules)


def section(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


# ------------------------------------------------------------------ explain

def test_explain_takes_the_pack_rule_form_every_output_prints(replayed):
    """Finding: `crmrules explain LEAD pack/rule` (the form every output prints) shows nothing and exits 0."""

    out = explain(replayed, "sales/hot-lead")
    assert out.returncode == 0, out.stderr
    decisions = section(out.stdout, "decisions:", "rules that did not fire")
    assert "sales/hot-lead: FIRED" in decisions
    assert "sales/welcome" not in out.stdout.split("decisions:", 1)[1]  # the score ledger stays whole
    bare = explain(replayed, "hot-lead")
    assert bare.returncode == 0 and "sales/hot-lead: FIRED" in bare.stdout
    assert "sales/welcome" not in bare.stdout.split("decisions:", 1)[1]


def test_explain_an_unknown_rule_is_an_error_with_did_you_mean(replayed):
    """Finding: an unknown rule id exits 0 (and shows nothing)."""

    out = explain(replayed, "sales/hot-led")
    assert out.returncode == 1
    assert "no rule 'sales/hot-led'" in out.stderr and "did you mean 'sales/hot-lead'" in out.stderr
    assert out.stdout == ""


def test_explain_shows_a_quiet_hours_hold_with_the_time_the_message_goes(replayed):
    """Finding: quiet-hour holds appear nowhere in explain."""

    out = explain(replayed, "sales/hot-lead")
    message = next(line for line in out.stdout.splitlines() if "→ message" in line)
    assert "held by quiet hours 21:00–08:00 (Asia/Seoul)" in message
    assert "goes out 2026-03-03 08:00 KST" in message and "decided for 2026-03-02 22:00 KST" in message


def test_explain_shows_score_decay_in_the_score_ledger(replayed):
    """Finding: score decay appears nowhere in explain: the score falls and nothing says why."""

    out = explain(replayed).stdout
    ledger = section(out, "score: (decay -10 points every 30d)", "decisions:")
    assert "2026-03-02 10:00 KST  +5 → 5  sales/welcome" in ledger
    assert "2026-03-02 22:00 KST  +30 → 35  sales/hot-lead" in ledger
    assert "2026-04-01 22:00 KST  -10 → 25  decay" in ledger
    assert "now 25" in ledger and "next decay -10 at 2026-05-01 22:00 KST" in ledger


def test_explain_never_prints_a_false_condition_under_a_fired_rule(replayed):
    """Finding: explain prints a false condition under a fired rule: it loses `any`/`all` and segment names, so
    the alternative that did not hold (two pricing views) reads as a reason the rule fired."""

    out = explain(replayed, "sales/hot-lead").stdout
    fired = section(out, "sales/hot-lead: FIRED", "→ tag")
    assert "✗" not in fired
    assert "page_view" not in fired  # the alternative that did not hold is counted, not shown
    assert "(+1 other alternative(s), not needed)" in fired
    assert "✓ all of:" in fired and "✓ segment hot, any of:" in fired
    assert "✓ count of demo_request within 30d ≥ 1: 1 of at least 1" in fired


def test_explain_reads_not_marks_as_the_whole_line(replayed):
    """Finding: inside `not:` the mark shows the inner result (✗ for "unsubscribed = true" being false), as if the
    condition had failed."""

    out = explain(replayed).stdout
    fired = section(out, "sales/hot-lead: FIRED", "→ tag")
    assert "✓ not: lead.unsubscribed = True: lead.unsubscribed was None" in fired
    opted = out.split("rules that did not fire", 1)[1].split("sales/opted-out", 1)[1]  # the last rule listed
    assert "✗ not: lead.email_opt_in = True: lead.email_opt_in is True" in opted
    assert "✗ all of:" in opted


def test_explain_json(replayed):
    """Finding: `--json` is missing on explain, for scripting; times there are ISO with the display zone."""

    out = explain(replayed, "hot-lead", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["zone"] == "Asia/Seoul"
    (decision,) = data["decisions"]
    assert decision["rule"] == "sales/hot-lead" and decision["outcome"] == "fired"
    assert decision["at"] == "2026-03-02T22:00:00+09:00"
    message = next(a for a in decision["actions"] if a["type"] == "message")
    assert message["hold"]["until"] == "2026-03-03T08:00:00+09:00" and message["status"] == "replayed"
    assert decision["conditions"]["node"] == "all" and decision["conditions"]["ok"] is True
    assert data["score"]["score"] == 25


# ------------------------------------------------------------------ one display zone

def test_every_printed_time_is_in_the_display_zone_with_the_zone_shown(replayed, tmp_path):
    """Finding: times print in three zones (demo in Seoul, explain/outbox/tests in UTC, some without a zone
    marker). The deployment's `timezone` decides; unset, the packs' own zone (Asia/Seoul here)."""

    folder, store, rules = replayed
    out = explain(replayed).stdout
    assert "first seen 2026-03-02 09:00 KST" in out and "times in Asia/Seoul" in out
    config = tmp_path / "crmrules.yaml"
    config.write_text(f"store: {store}\nrules: [{rules}]\ntimezone: Europe/London\n", encoding="utf-8")
    listing = crmrules("--config", str(config), "outbox", "list")
    assert listing.returncode == 0, listing.stderr
    assert "due 2026-03-03 08:00 KST" not in listing.stdout
    assert "due 2026-03-02 23:00 GMT" in listing.stdout  # 08:00 in Seoul is 23:00 the day before in London
    london = crmrules("--config", str(config), "explain", KIM).stdout
    assert "first seen 2026-03-02 00:00 GMT" in london and "KST" not in london
    bad = tmp_path / "bad.yaml"
    bad.write_text("timezone: Asia/Seul\n", encoding="utf-8")
    refused = crmrules("--config", str(bad), "outbox", "list")
    assert refused.returncode != 0 and "timezone" in refused.stderr and "Asia/Seul" in refused.stderr


def test_outbox_list_json(replayed, tmp_path):
    """Finding: `--json` is missing on `outbox list`."""

    folder, store, rules = replayed
    config = tmp_path / "crmrules.yaml"
    config.write_text(f"store: {store}\nrules: [{rules}]\n", encoding="utf-8")
    out = crmrules("--config", str(config), "outbox", "list", "--json", "--status", "replayed")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["zone"] == "Asia/Seoul" and data["counts"]["replayed"] == len(data["rows"]) > 0
    message = next(r for r in data["rows"] if r["action_type"] == "message")
    assert message["due_at"] == "2026-03-03T08:00:00+09:00" and message["action"]["subject"] == "안녕하세요"


# ------------------------------------------------------------------ replays

def test_run_exits_non_zero_when_a_line_was_rejected(tmp_path):
    """Finding: `crmrules run` exits 0 when lines were rejected."""

    rules = tmp_path / "sales.yaml"
    rules.write_text(textwrap.dedent(PACK), encoding="utf-8")
    write_events(tmp_path / "e.jsonl", EVENTS[:2] + [{"id": "x", "type": "signup", "lead": KIM}])
    out = crmrules("run", "--rules", str(rules), "--events", str(tmp_path / "e.jsonl"), "--store", str(tmp_path / "s.sqlite"))
    assert out.returncode == 1
    assert "e.jsonl:3: occurred_at: Field required" in out.stderr and "1 line(s) rejected" in out.stderr
    assert "events: 2 processed" in out.stdout


def test_a_poisoned_line_is_rejected_and_never_crashes_a_later_run(tmp_path):
    """Finding: one line with `"subject": {}` is accepted and then crashes every later `run` on that store (the
    `ids` check did not run on a missing `ids`, and the inbox re-read the stored row with it)."""

    rules = tmp_path / "sales.yaml"
    rules.write_text(textwrap.dedent(PACK), encoding="utf-8")
    poisoned = [{"id": "p1", "type": "signup", "at": "2026-03-02T10:00:00+09:00", "subject": {}},
                {"id": "p2", "type": "signup", "at": "2026-03-02T10:00:00+09:00", "lead": {}},
                {"id": "p3", "type": "merge", "at": "2026-03-02T10:00:00+09:00", "lead": KIM,
                 "props": {"merged_ids": "kim2@example.com"}},
                {"id": "p4", "type": "signup", "at": "9999-12-31T23:00:00+00:00", "lead": KIM}]
    write_events(tmp_path / "e.jsonl", EVENTS[:2] + poisoned)
    store = str(tmp_path / "s.sqlite")
    first = crmrules("run", "--rules", str(rules), "--events", str(tmp_path / "e.jsonl"), "--store", store)
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    assert "e.jsonl:3: subject.ids: Value error, an entity reference needs at least one id" in first.stderr
    assert "e.jsonl:4: subject.ids" in first.stderr
    assert "e.jsonl:5:" in first.stderr and "merged_ids" in first.stderr
    assert "e.jsonl:6:" in first.stderr and "1970 to 9000" in first.stderr
    with sqlite3.connect(store) as db:
        keys = {k for (k,) in db.execute("SELECT key FROM inbox")}
    assert keys == {"1", "2"}  # nothing of the rejected lines was stored
    write_events(tmp_path / "more.jsonl", EVENTS[2:])
    later = crmrules("run", "--rules", str(rules), "--events", str(tmp_path / "more.jsonl"), "--store", store)
    assert later.returncode == 0, later.stderr
    assert "events: 2 processed" in later.stdout


def test_a_poisoned_row_already_in_a_store_is_set_aside(tmp_path):
    """Finding (the same, for stores written before the fix): a stored `"subject": {"kind": "lead", "ids": {}}`
    row crashed every later `run`; it is now set aside as rejected with its reason, and the run goes on."""

    rules = tmp_path / "sales.yaml"
    rules.write_text(textwrap.dedent(PACK), encoding="utf-8")
    store = str(tmp_path / "s.sqlite")
    open_store(store).close()
    payload = json.dumps({"id": "old", "source": "import", "type": "signup", "occurred_at": "2026-03-01T00:00:00Z",
                          "subject": {"kind": "lead", "ids": {}}, "related": [], "properties": {}})
    with sqlite3.connect(store) as db:  # as the old code stored it: written directly, it cannot be built now
        db.execute("INSERT INTO inbox (source, key, received_at, occurred_at, payload) VALUES ('import', 'old', 0, 0, ?)",
                   (payload,))
    write_events(tmp_path / "e.jsonl", EVENTS)
    out = crmrules("run", "--rules", str(rules), "--events", str(tmp_path / "e.jsonl"), "--store", store)
    assert out.returncode == 0, out.stderr
    assert "events: 4 processed" in out.stdout
    with sqlite3.connect(store) as db:
        status, error = db.execute("SELECT status, error FROM inbox WHERE key='old'").fetchone()
    assert status == "rejected" and "at least one id" in error


def test_csv_with_an_at_column_and_the_jsonl_field_names(tmp_path):
    """Finding: a CSV with an `at` column rejects every row (only `occurred_at` was read)."""

    rules = tmp_path / "sales.yaml"
    rules.write_text(textwrap.dedent(PACK), encoding="utf-8")
    csv_file = tmp_path / "events.csv"
    csv_file.write_text("id,type,at,email,first_name,email_opt_in\n"
                        "1,record_update,2026-03-02T09:00:00+09:00,kim@example.com,유진,true\n"
                        "2,demo_request,2026-03-02T12:00:00+09:00,kim@example.com,,\n"
                        ",signup,2026-03-02T13:00:00+09:00,kim@example.com,,\n", encoding="utf-8")
    out = crmrules("run", "--rules", str(rules), "--events", str(csv_file), "--store", str(tmp_path / "s.sqlite"),
                   "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["events"] == {"read": 3, "processed": 3, "already_seen": 0, "rejected": 0}
    assert summary["decisions"] == {"fired": 2} and summary["actions"]["message"] == 1
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        assert {e.id for e in store.events_of(store.find_entity(KIM))} == {"1", "2", "events.csv:4"}
    finally:
        store.close()


@pytest.mark.parametrize("until, due", [
    ("2026-05-02", "2026-05-02T00:00:00+09:00"),                 # a date: midnight in the display zone
    ("2026-05-02 UTC", "2026-05-02T09:00:00+09:00"),             # ... in a zone of its own
    ("2026-05-02T12:00:00+09:00", "2026-05-02T12:00:00+09:00"),
    ("+20d", "2026-05-10T10:00:00+09:00"),                        # after the file's last event
    ("tomorrow", None), ("now", None),
])
def test_until_takes_dates_offsets_words_and_zones(tmp_path, until, due):
    """Finding: `--until tomorrow` / `+3d` is a traceback; `--until` took only an ISO time."""

    rules = tmp_path / "sales.yaml"
    rules.write_text(textwrap.dedent(PACK), encoding="utf-8")
    write_events(tmp_path / "e.jsonl", EVENTS)
    out = crmrules("run", "--rules", str(rules), "--events", str(tmp_path / "e.jsonl"),
                   "--store", str(tmp_path / "s.sqlite"), "--until", until, "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    if due is not None:
        assert summary["until"] == due
    else:
        moved = dt.datetime.fromisoformat(summary["until"])
        assert abs(moved - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(days=1, hours=1)


@pytest.mark.parametrize("until", ["next week", "3d", "+3 parsecs", "2026-13-01", "2026-03-05 Mars/Olympus"])
def test_a_bad_until_is_a_clear_error_not_a_traceback(tmp_path, until):
    """Finding: a bad `--until` ends in a Python traceback."""

    rules = tmp_path / "sales.yaml"
    rules.write_text(textwrap.dedent(PACK), encoding="utf-8")
    write_events(tmp_path / "e.jsonl", EVENTS)
    out = crmrules("run", "--rules", str(rules), "--events", str(tmp_path / "e.jsonl"),
                   "--store", str(tmp_path / "s.sqlite"), "--until", until)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "Invalid value for --until" in out.stderr
    assert "tomorrow" in out.stderr or "time zone" in out.stderr  # says how to write it
    assert not (tmp_path / "s.sqlite").exists()  # refused before anything was replayed


def test_a_replay_never_queues_live_pushes_unless_live(tmp_path):
    """Finding: `run` against the deployment's store queues live pushes that a running sidecar then sends.
    Replayed actions are `replayed` rows the dispatcher never claims (the real dispatcher runs on the store
    here); timers the replay armed keep the mark when they fire later, live; `--live` queues them."""

    from crmrules import Pipeline
    from crmrules.language.loader import load_rules

    rules = tmp_path / "sales.yaml"
    rules.write_text(textwrap.dedent(PACK), encoding="utf-8")
    write_events(tmp_path / "e.jsonl", EVENTS[:3])
    store_path = str(tmp_path / "s.sqlite")
    out = crmrules("run", "--rules", str(rules), "--events", str(tmp_path / "e.jsonl"), "--store", store_path)
    assert out.returncode == 0, out.stderr
    assert "never pushed" in out.stdout
    settings = Settings(store=store_path, targets={"default": "nowhere"})
    store = open_store(store_path)
    try:
        assert set(store.outbox_counts()) == {"replayed"}
        assert store.timers_of(store.find_entity(KIM))  # the no-reply wait, due 30 days after the signup
        later = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc).timestamp()
        # the sidecar's worker, weeks later: fires the wait, then its dispatcher pushes what is due
        pipeline = Pipeline(store, load_rules([str(rules)]))
        assert pipeline.advance(later) == 1
        assert Dispatcher(store, settings).run_once(later) == 0
        counts = store.outbox_counts()
        assert set(counts) == {"replayed"} and counts["replayed"] == 6  # tag, score, tag, score, message, task
    finally:
        store.close()
    live_store = str(tmp_path / "live.sqlite")
    live = crmrules("run", "--rules", str(rules), "--events", str(tmp_path / "e.jsonl"), "--store", live_store, "--live")
    assert live.returncode == 0, live.stderr
    store = open_store(live_store)
    try:
        assert set(store.outbox_counts()) == {"pending"}
        handled = Dispatcher(store, settings).run_once(dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc).timestamp())
        assert handled == 5 and store.outbox_counts() == {"dead": 5}  # claimed and pushed (to no registered target)
    finally:
        store.close()


def test_the_event_file_page_examples_replay_as_documented(tmp_path):
    """Finding: the event file format was undocumented. docs/event-files.md shows every field in JSONL and CSV;
    both examples replay here without a rejected line, and name the same lead."""

    import re
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "event-files.md").read_text(encoding="utf-8")
    jsonl = re.search(r"```json\n(.*?)```", page, re.S).group(1)
    csv_text = re.search(r"```csv\n(.*?)```", page, re.S).group(1)
    for field in ("id", "type", "at", "occurred_at", "lead", "deal", "subject", "related", "props", "properties",
                  "source", "merged_ids"):
        assert f'"{field}"' in jsonl, field
    (tmp_path / "e.jsonl").write_text(jsonl, encoding="utf-8")
    (tmp_path / "e.csv").write_text(csv_text, encoding="utf-8")
    rules = tmp_path / "sales.yaml"
    rules.write_text(textwrap.dedent(PACK), encoding="utf-8")
    for name in ("e.jsonl", "e.csv"):
        out = crmrules("run", "--rules", str(rules), "--events", str(tmp_path / name),
                       "--store", str(tmp_path / f"{name}.sqlite"), "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["events"]["rejected"] == 0
        store = open_store(str(tmp_path / f"{name}.sqlite"))
        try:
            assert store.find_entity("kim@example.com") == store.find_entity("101")
        finally:
            store.close()


def test_an_event_whose_evaluation_fails_is_set_aside_and_the_replay_goes_on(tmp_path):
    """Finding (poisoned lines): one bad event stopped the whole replay and stayed pending, crashing every later
    run on the store. An event that passes validation but fails to evaluate is now set aside as `rejected` with
    its reason, and the others are replayed. No real event makes today's evaluator fail, so the evaluator is
    made to fail on one event in process (the only mock here)."""

    from crmrules import Pipeline
    from crmrules.eventfile import event_from_dict
    from crmrules.language.loader import load_rules

    rules = tmp_path / "sales.yaml"
    rules.write_text(textwrap.dedent(PACK), encoding="utf-8")
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        pipeline = Pipeline(store, load_rules([str(rules)]))
        real = pipeline.evaluator.on_event

        def on_event(ctx, trigger, changed):
            if trigger.id == "2":
                raise RuntimeError("the evaluator broke on this one")
            return real(ctx, trigger, changed)

        pipeline.evaluator.on_event = on_event
        stats = pipeline.replay([event_from_dict(e) for e in EVENTS])
        assert stats.events == 3 and stats.rejected == 1
        assert len(pipeline.rejected) == 1 and "the evaluator broke on this one" in pipeline.rejected[0]
        assert store.inbox_counts() == {"done": 3, "rejected": 1}
        assert store.pending(100) == []
        assert [d.rule for d in store.all_decisions()] == ["hot-lead"]  # the signup's welcome never ran
    finally:
        store.close()


def test_pack_test_json_names_the_display_zone_like_explain_and_outbox(tmp_path):
    """Finding (one display zone; --json consistent): `crmrules test` printed times in each case's own zone while
    explain and outbox list used UTC. Now every command prints the display zone, and every `--json` names it."""

    pack = tmp_path / "sales"
    (pack / "tests").mkdir(parents=True)
    (pack / "pack.yaml").write_text(textwrap.dedent(PACK), encoding="utf-8")
    (pack / "tests" / "cases.yaml").write_text(textwrap.dedent("""
        tests:
          - name: a signup is welcomed
            lead: {email: kim@example.com}
            events: [{at: +0d, event: signup}]
            expect: [{rule: welcome}]
        """), encoding="utf-8")
    seoul = json.loads(crmrules("test", "--json", str(pack)).stdout)
    assert seoul["zone"] == "Asia/Seoul" and seoul["cases"][0]["trail"][0]["at"] == "2026-01-05T09:00:00+09:00"
    config = tmp_path / "crmrules.yaml"
    config.write_text(f"rules: [{pack}]\ntimezone: UTC\n", encoding="utf-8")
    utc = crmrules("--config", str(config), "test", "--json")
    assert utc.returncode == 0, utc.stderr
    report = json.loads(utc.stdout)
    assert report["zone"] == "UTC" and report["cases"][0]["trail"][0]["at"] == "2026-01-05T00:00:00+00:00"


def test_explain_shows_when_a_message_cap_lets_the_next_message_go(tmp_path):
    """Finding: holds appear nowhere in explain; for a message cap, when the next message may go."""

    rules = tmp_path / "cap.yaml"
    rules.write_text(textwrap.dedent("""
        pack: cap
        messages: {max_per_person: 1 per 7d, quiet_hours: {from: "21:00", to: "08:00", timezone: Asia/Seoul}}
        rules:
          - id: hello
            when: {event: signup}
            then: [{message: {subject: 안녕하세요, body: 반갑습니다}}]
            limit: every time
        """), encoding="utf-8")
    write_events(tmp_path / "e.jsonl", [
        {"id": "1", "type": "record_update", "at": "2026-03-02T09:00:00+09:00", "lead": KIM, "props": {"email_opt_in": True}},
        {"id": "2", "type": "signup", "at": "2026-03-02T10:00:00+09:00", "lead": KIM},
        {"id": "3", "type": "signup", "at": "2026-03-04T10:00:00+09:00", "lead": KIM}])
    store = str(tmp_path / "s.sqlite")
    assert crmrules("run", "--rules", str(rules), "--events", str(tmp_path / "e.jsonl"), "--store", store).returncode == 0
    out = crmrules("explain", KIM, "cap/hello", "--store", store, "--rules", str(rules)).stdout
    blocked = out.split("2026-03-04 10:00 KST  cap/hello: BLOCKED — message cap 1 per 7d reached", 1)[1]
    assert blocked.splitlines()[1].strip() == "message cap: the next message may go from 2026-03-09 10:00 KST"
