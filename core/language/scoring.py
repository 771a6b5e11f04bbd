"""`scoring:` — how a lead's points decay while nothing happens (docs/rule-language.md, A pack and Actions)."""

from __future__ import annotations

from . import ast
from .context import ParseContext, report_unknown_keys
from .values import read_duration, read_number
from .yamlmarks import MarkedDict


def read_decay(ctx: ParseContext, sc: MarkedDict) -> ast.Decay | None:
    """The pack's `decay:`, or None when it has none or it is wrong (then the error is reported)."""

    report_unknown_keys(ctx, sc, {"decay"}, "scoring")
    decay = sc.get("decay")
    if isinstance(decay, MarkedDict):
        report_unknown_keys(ctx, decay, {"points", "percent", "every", "after_idle"}, "scoring.decay")
        every = read_duration(ctx, decay, "every", "scoring.decay.every") if "every" in decay else None
        idle = read_duration(ctx, decay, "after_idle", "scoring.decay.after_idle") if "after_idle" in decay else None
        points = read_number(ctx, decay, "points", "scoring.decay.points") if "points" in decay else None
        percent = read_number(ctx, decay, "percent", "scoring.decay.percent") if "percent" in decay else None
        if every is None or (points is None) == (percent is None):
            ctx.error(sc, "decay", "scoring.decay", "write `decay: {points: 5, every: 7d}` or `{percent: 10, every: 30d}`")
        else:
            return ast.Decay(points, percent, every, idle)
    elif decay is not None:
        ctx.error(sc, "decay", "scoring.decay", "write `decay: {points: 5, every: 7d}`")
    return None
