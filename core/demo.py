"""`crmrules demo`: replay the example events through the shipped packs and show who sales should call now.

The events (examples/demo/events.jsonl) run through every shipped pack (rules/) on event time, then the clock
moves a few days past the last event so that waiting rules (no reply, no signature, blog-and-gone) decide too. The
result is a prioritised lead table and, under it, what each lead got: tasks, messages with their rendered
subject, tags, points. Nothing is pushed anywhere: the actions stay in the (temporary) store's outbox.

Both folders ship inside the package (`crmrules.shipped` finds them), so the demo works after a plain `pip
install`, from any folder; in a clone they are the repository's own.

Priority comes from what the rules concluded, not from the score alone: the packs' tags for "contact now"
(lead-scoring: 영업 이관 at 80 points, 빠른 대응 for pricing + eBook + newsletter) come first, then leads
with a proposal open, high interest, customer work, seminar and industry segments, and nurturing last; the
score orders leads within a step.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from .people import display_name
from .decide.state import EntityState
from .eventfile import read_events
from .language import PackError, ast
from .language.loader import load_rules
from .models import Decision, OutboxItem
from .times import display_zone, zone_label

SETTLE = dt.timedelta(days=3)  # after the last event, so 24h/3d waits can end

# Tag and segment names the table reads, with the packs' defaults; a deployment's overrides are read from the
# loaded packs' variables, so renaming a tag in a pack keeps the demo right.
DEFAULT_NAMES = {
    ("lead-scoring", "tag_sales_ready"): "영업 이관",
    ("lead-scoring", "tag_fast_response"): "빠른 대응",
    ("segmentation", "tag_high_interest"): "관심 높음",
    ("segmentation", "tag_needs_nurturing"): "추가 육성 필요",
    ("segmentation", "tag_seminar"): "세미나 참석",
    ("segmentation", "focus_industries"): ["manufacturing", "Manufacturing", "MANUFACTURING", "MACHINERY",
                                           "INDUSTRIAL_AUTOMATION", "제조", "제조업"],
    ("proposal-contract", "tag_priority"): "우선 응대",
    ("proposal-contract", "tag_customer"): "계약 완료",
    ("issues-relationship", "tag_recurring"): "반복 이슈",
    ("issues-relationship", "tag_upsell"): "업셀 후보",
}

CONTACT_NOW = "즉시 영업 연락 / contact now"


@dataclass
class LeadRow:
    entity_id: str
    name: str
    email: str
    company: str
    score: float
    tags: list[str]
    segments: list[str]
    step: str
    tier: int
    lines: list[tuple[float, str, str, str]] = field(default_factory=list)  # (when, kind, text, rule)


# ------------------------------------------------------------------ entry point

def run_demo(rules_dir: Path, demo_dir: Path, store_path: str | None, timezone: str | None = None) -> None:
    """Replay demo_dir/events.jsonl through the packs in rules_dir and print the prioritised leads; times in the
    display zone (`timezone`, else the packs' own: Asia/Seoul for the shipped packs)."""

    events_file = Path(demo_dir) / "events.jsonl"
    if not events_file.is_file():
        raise click.ClickException(f"{events_file}: no demo events here")
    packs = _load_packs(Path(rules_dir))
    errors: list[str] = []
    events = list(read_events(events_file, errors))
    for line in errors:
        click.secho(line, fg="yellow", err=True)
    if not events:
        raise click.ClickException(f"{events_file}: no events to replay")
    until = max(e.occurred_at for e in events) + SETTLE
    zone = display_zone(timezone, packs)

    if store_path is None:
        with tempfile.TemporaryDirectory(prefix="crmrules-demo-") as tmp:
            _run(packs, events, until, str(Path(tmp) / "demo.sqlite"), events_file, zone)
    else:
        _run(packs, events, until, store_path, events_file, zone)


def _load_packs(rules_dir: Path) -> list[ast.Pack]:
    """Every pack in rules/; a pack with errors is left out with a warning rather than stopping the demo."""

    try:
        return load_rules([str(rules_dir)])
    except PackError:
        pass
    packs: list[ast.Pack] = []
    for child in sorted(rules_dir.iterdir()):
        if child.name.startswith(".") or not (child.is_dir() or child.suffix in (".yaml", ".yml")):
            continue
        if child.is_dir() and not (child / "pack.yaml").is_file():
            continue
        try:
            packs += load_rules([str(child)])
        except PackError as exc:
            click.secho(f"demo: leaving out {child.name} ({len(exc.errors)} error(s); run `crmrules check {child}`)",
                        fg="yellow", err=True)
    if not packs:
        raise click.ClickException(f"{rules_dir}: no rule pack loads")
    return packs


def _run(packs: list[ast.Pack], events: list[Any], until: dt.datetime, store_path: str, source: Path,
         zone: dt.tzinfo) -> None:
    from . import plugins
    from .clock import ManualClock
    from .pipeline import Pipeline
    from .store import open_store

    store = open_store(store_path)
    try:
        pipeline = Pipeline(store, packs, clock=ManualClock(until.timestamp()))
        stats = pipeline.replay(events, until=until.timestamp())
        rows = _rows(pipeline, packs, until.timestamp(), zone)
        first = min(e.occurred_at for e in events).astimezone(zone)
        _print(rows, packs, stats, len(events), source, first, until.astimezone(zone), zone)
    finally:
        store.close()


# ------------------------------------------------------------------ what each lead got

def _names(packs: list[ast.Pack]) -> dict[str, Any]:
    by_pack = {p.name: p.variables for p in packs}
    out: dict[str, Any] = {}
    for (pack, var), default in DEFAULT_NAMES.items():
        out[var] = by_pack.get(pack, {}).get(var, default)
    return out


def _rows(pipeline: Any, packs: list[ast.Pack], until: float, zone: dt.tzinfo) -> list[LeadRow]:
    store = pipeline.store
    names = _names(packs)
    decisions: dict[str, list[Decision]] = defaultdict(list)
    for d in store.all_decisions():
        decisions[d.entity_id].append(d)
    due_of: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
    cancelled: set[tuple[str, str]] = set()
    for row in store.outbox_rows(limit=1_000_000):
        item = OutboxItem.model_validate_json(row["body"])
        due_of[(item.decision_id, item.action.model_dump_json())].append((item.due_at, row["status"]))
        if row["status"] == "cancelled":
            cancelled.add((item.entity_id, item.rule))

    rows = []
    for entity_id, _kind, data in store.entities("lead"):
        state = EntityState.from_json(data)
        state.decay(pipeline.program.decay, until)  # the score as of the end of the replay
        props = state.props
        row = LeadRow(entity_id=entity_id, name=display_name(props) or str(props.get("email", entity_id)),
                      email=str(props.get("email", "")), company=str(props.get("company", "")),
                      score=state.score, tags=list(state.tags), segments=_segments(state, names), step="", tier=0)
        row.tier, row.step = _next_step(state, names)
        for d in decisions.get(entity_id, []):
            row.lines += _describe(d, due_of, cancelled, zone)
        row.lines = _without_noop_untags(sorted(row.lines, key=lambda line: line[0]))
        rows.append(row)
    rows.sort(key=lambda r: (r.tier, -r.score, r.name))
    return rows


def _without_noop_untags(lines: list[tuple[float, str, str, str]]) -> list[tuple[float, str, str, str]]:
    """Rules untag unconditionally ("관심 높음" replaces "추가 육성 필요"); show an untag only if the tag was on."""

    had: set[str] = set()
    out = []
    for line in lines:
        _when, kind, text, _rule = line
        if kind == "태그" and text.startswith("+"):
            had.add(text[1:])
        elif kind == "태그" and text.startswith("−"):
            if text[1:] not in had:
                continue
            had.discard(text[1:])
        out.append(line)
    return out


def _segments(state: EntityState, names: dict[str, Any]) -> list[str]:
    tags, props = state.tags, state.props
    out = []
    if names["tag_high_interest"] in tags:
        out.append("high-intent")
    if names["tag_seminar"] in tags:
        out.append("seminar")
    if str(props.get("industry", "")) in [str(v) for v in names["focus_industries"]]:
        out.append("manufacturing")
    if str(props.get("lifecycle_stage", "")) == "customer" or names["tag_customer"] in tags:
        out.append("customer")
    if names["tag_needs_nurturing"] in tags:
        out.append("nurture/retargeting")
    return out


def _next_step(state: EntityState, names: dict[str, Any]) -> tuple[int, str]:
    """(tier, next step): the first that applies, in the order sales works them."""

    tags = state.tags
    opted_in = str(state.props.get("email_opt_in", "")).strip().lower() in ("true", "1", "yes")
    if names["tag_sales_ready"] in tags or names["tag_fast_response"] in tags:
        return 0, CONTACT_NOW
    if names["tag_priority"] in tags:
        return 1, "제안서 후속 연락 / proposal follow-up"
    if names["tag_high_interest"] in tags:
        if opted_in:
            return 2, "첫 메일 후속 연락 / email follow-up"
        return 2, "전화 연락, 메일 동의 없음 / call"
    if names["tag_recurring"] in tags:
        return 3, "반복 이슈 점검 / recurring issue"
    if names["tag_customer"] in tags:
        return 3, "납품·온보딩 / onboarding"
    if names["tag_upsell"] in tags:
        return 3, "업셀 제안 / upsell"
    if names["tag_seminar"] in tags:
        return 4, "사례 상담 제안 / case consultation"
    if str(state.props.get("industry", "")) in [str(v) for v in names["focus_industries"]]:
        return 4, "업종 사례 후속 / industry cases"
    if names["tag_needs_nurturing"] in tags:
        return 5, "육성·리타겟팅 / nurture"
    return 6, "지켜보기 / watch"


def _describe(d: Decision, due_of: dict[tuple[str, str], list[tuple[float, str]]],
              cancelled: set[tuple[str, str]], zone: dt.tzinfo) -> list[tuple[float, str, str, str]]:
    rule = f"{d.pack}/{d.rule}"
    if d.outcome == "blocked":
        # Limits, cooldowns and group losses are routine; consent and caps are worth seeing, and a goal when it
        # cancelled something (the core records a goal decision whenever the goal event comes).
        if any(word in d.reason for word in ("consent", "message cap")) or (
                "goal reached" in d.reason and (d.entity_id, rule) in cancelled):
            return [(d.at, "✗ 보류", d.reason, rule)]
        return []
    out = []
    for action in d.actions:
        due = due_of.get((d.id, action.model_dump_json()), [])
        due_at, status = due[0] if due else (d.at, "")
        later = f" → {_t(due_at, zone)} 발송" if due_at - d.at >= 60 and action.type in ("message", "webhook") else ""
        dropped = " (취소됨)" if status == "cancelled" else ""
        if action.type == "score":
            out.append((d.at, "점수", f"{action.points:+g}", rule))
        elif action.type in ("tag", "untag"):
            out.append((d.at, "태그", ("+" if action.type == "tag" else "−") + action.tag, rule))
        elif action.type == "set":
            text = ", ".join(f"{k}={v}" for k, v in action.properties.items())
            out.append((d.at, "속성", text, rule))
        elif action.type == "task":
            extra = [action.owner.split("@")[0]] if action.owner else []
            if action.due_in:
                extra.append(f"기한 {_t(d.at + action.due_in, zone)}")
            mark = {"high": "‼ ", "medium": "", "low": "↓ "}.get(action.priority, "")
            out.append((d.at, "할일", f"{mark}{action.title}" + (f" ({', '.join(extra)})" if extra else ""), rule))
        elif action.type == "message":
            label = "메일" if action.channel == "email" else action.channel
            out.append((d.at, label, f"{action.subject or action.body[:40]}{later}{dropped}", rule))
        elif action.type == "webhook":
            text = action.payload.get("text") or action.url
            out.append((d.at, "알림", f"{text}{later}{dropped}", rule))
        else:
            name = action.name if action.type == "custom" else action.type
            out.append((d.at, name, json.dumps(action.model_dump(exclude_none=True), ensure_ascii=False)[:80], rule))
    return out


# ------------------------------------------------------------------ printing

def _t(ts: float, zone: dt.tzinfo) -> str:
    """`03-06 16:50 KST`: the demo's short form, with the zone like every printed time."""

    moment = dt.datetime.fromtimestamp(ts, zone)
    return f"{moment:%m-%d %H:%M} {zone_label(moment)}"


def width(text: str) -> int:
    """Columns the text takes in a terminal: Hangul and other wide characters take two."""

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 0 if unicodedata.combining(ch) else 1
               for ch in text)


def pad(text: str, columns: int) -> str:
    return text + " " * max(0, columns - width(text))


def _print(rows: list[LeadRow], packs: list[ast.Pack], stats: Any, n_events: int, source: Path,
           first: dt.datetime, until: dt.datetime, zone: dt.tzinfo) -> None:
    echo = click.echo
    rules = sum(len(p.rules) for p in packs)
    echo(click.style("crmrules demo", bold=True)
         + f" — {n_events} events of {len(rows)} leads replayed through {len(packs)} packs ({rules} rules)")
    echo(f"  events: {source}")
    echo(f"  event time {first:%Y-%m-%d} → {until:%Y-%m-%d %H:%M} {zone_label(until)} ({zone}; 3 days after the last "
         "event, so waits end)")
    decided = ", ".join(f"{n} {k}" for k, n in sorted(stats.decisions.items())) or "none"
    acted = ", ".join(f"{n} {k}" for k, n in sorted(stats.actions.items())) or "none"
    echo(f"  decisions: {decided}")
    echo(f"  actions: {acted} (nothing is pushed: the demo only fills its outbox)")
    echo("")
    echo(click.style("우선순위 리드 / prioritised leads", bold=True))

    # Tags go last: on a narrow terminal the line wraps after what matters (rank, name, score, next step).
    header = ["#", "이름 name", "점수", "다음 단계 next step", "세그먼트 segment", "태그 tags"]
    table = [[str(i), r.name, f"{r.score:g}", r.step, ", ".join(r.segments) or "-", ", ".join(r.tags) or "-"]
             for i, r in enumerate(rows, start=1)]
    widths = [max(width(line[c]) for line in [header] + table) for c in range(len(header))]

    def render(cells: list[str], style: dict[str, Any] | None = None) -> str:
        parts = []
        for c, cell in enumerate(cells):
            cell = _clip(cell, widths[c])
            parts.append(cell.rjust(widths[c]) if c in (0, 2) else pad(cell, widths[c]))
        line = "  ".join(parts).rstrip()
        return click.style(line, **style) if style else line

    echo(render(header, {"bold": True}))
    echo("  ".join("─" * w for w in widths))
    for cells, row in zip(table, rows):
        echo(render(cells, {"fg": "red", "bold": True} if row.step == CONTACT_NOW else None))

    echo("")
    echo(click.style("리드별 조치 / what each lead got", bold=True) + f"  (‼ high-priority task; times in {zone})")
    for i, row in enumerate(rows, start=1):
        echo("")
        who = " · ".join(x for x in (row.company, row.email) if x)
        echo(click.style(f"{i}. {row.name}", bold=True) + f"  {who} · 점수 {row.score:g} · {row.step}")
        if not row.lines:
            echo("   (no rule fired)")
        for when, kind, text, rule in row.lines:
            echo(f"   {_t(when, zone)}  {pad(kind, 6)} {text}  " + click.style(rule, dim=True))
    echo("")
    echo("Why did a rule fire or not? Keep the store with `crmrules demo --store demo.sqlite`, then "
         "`crmrules explain <email> --store demo.sqlite`.")
    sys.stdout.flush()


def _clip(text: str, columns: int) -> str:
    if width(text) <= columns:
        return text
    out = ""
    for ch in text:
        if width(out + ch + "…") > columns:
            return out + "…"
        out += ch
    return out
