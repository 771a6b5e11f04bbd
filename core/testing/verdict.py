"""A case's expectations held against what its replay did; each miss is one sentence with what was got."""

from __future__ import annotations

import datetime as dt

from ..models import Decision
from .shapes import Case, Expectation
from .patterns import Happened, describe
from .run import Run
from .times import show


def _times(n: int) -> str:
    return f"{n} time" if n == 1 else f"{n} times"


def _got(decisions: list[Decision]) -> str:
    return ", ".join(f"{d.outcome}{' (' + d.reason + ')' if d.reason else ''}" for d in decisions) \
        or "no decision at all"


def problems(case: Case, run: Run, zone: dt.tzinfo | None = None) -> list[str]:
    """Each expectation that did not hold, in a sentence; times in `zone` (default: the case's own)."""

    zone = zone or case.start.tzinfo
    out: list[str] = []
    fired = [d for d in run.decisions if d.outcome in ("fired", "shadow")]
    if case.nothing and fired:
        out.append("expected nothing to fire; got " + ", ".join(d.rule for d in fired))
    for exp in case.expect:
        out += _expectation(case, run, exp, zone)
    for rule in case.expect_not:
        bad = [d for d in fired if d.rule == rule]
        if bad:
            out.append(f"expected {rule} not to fire; it fired at " + ", ".join(show(d.at, zone) for d in bad))
    live = run.actions_of([d for d in run.decisions if d.outcome == "fired"])
    if case.no_actions_at_all and live:
        out.append("expected no actions; got " + "; ".join(f"{describe(h, zone)} from {h.decision.rule}" for h in live))
    for pattern in case.no_actions:
        done = [h for h in live if pattern.matches(h)]
        if done:
            out.append(f"expected no {pattern.text}; got "
                       + "; ".join(f"{describe(h, zone)} from {h.decision.rule}" for h in done))
    return out


def _expectation(case: Case, run: Run, exp: Expectation, zone: dt.tzinfo | None) -> list[str]:
    ids = run.entities.get(exp.about, set()) if exp.about else None
    about = [d for d in run.decisions if d.rule == exp.rule and (ids is None or d.entity_id in ids)]
    mine = [d for d in about if d.outcome == exp.outcome and (exp.reason is None or exp.reason in d.reason)]
    said = f"{exp.rule} to be {exp.outcome}" + (f" for {exp.about}" if exp.about else "") \
        + (f" (reason containing {exp.reason!r})" if exp.reason is not None else "")
    if exp.times is not None and len(mine) != exp.times:
        return [f"expected {said} {_times(exp.times)}; it was {exp.outcome} {_times(len(mine))}"
                + (f"; got {_got(about)}" if len(mine) == 0 else "")]
    if exp.times is None and not mine:
        return [f"expected {said}; got {_got(about)}"]
    actions = run.actions_of(mine)
    out = []
    for pattern in exp.actions:
        if not any(pattern.matches(h) for h in actions):
            out.append(f"{exp.rule}: expected {pattern.text}; got {_list(actions, zone)}")
    for pattern in exp.actions_not:
        done = [h for h in actions if pattern.matches(h)]
        if done:
            out.append(f"{exp.rule}: expected no {pattern.text}; got {_list(done, zone)}")
    return out


def _list(actions: list[Happened], zone: dt.tzinfo | None) -> str:
    return "; ".join(describe(h, zone) for h in actions) or "no actions"


def exercised(run: Run) -> set[str]:
    """Rules the case saw decided (fired, shadow or blocked): what `--coverage` counts."""

    return {d.rule for d in run.decisions}

