"""Guards: how often a rule may fire (`limit:`, `cooldown:`, counted `per:` value) and the pack's guards on
every message it sends (`messages:` cap and quiet hours) — docs/rule-language.md, Re-entry, `per:` and Guards
on messages. Consent and the Korean night rule need no syntax: the engine applies them to every message.
"""

from __future__ import annotations

import re

from . import ast
from .context import ParseContext, join_path, report_unknown_keys
from .durations import Duration, parse_duration
from .values import read_time_of_day, read_timezone
from .yamlmarks import MarkedDict

_LIMIT = re.compile(
    r"^(?:(?P<every>every time)|(?:(?P<once>once)|at most (?P<n>\d+))(?: per (?P<whom>lead|account|deal|person))?"
    r"(?: per (?P<per>[0-9.a-z]+))?)$"
)
_PER = re.compile(r"^(?:(?P<scope>event|lead|account|deal)\.)?(?P<name>[^\s.][^\s]*)$")


def read_limit(ctx: ParseContext, rule: MarkedDict, path: str) -> ast.Limit | None:
    if "limit" not in rule:
        return ast.ONCE
    text = " ".join(str(rule["limit"]).strip().lower().split())
    match = _LIMIT.match(text)
    if not match:
        ctx.error(rule, "limit", join_path(path, "limit"),
                  f"{rule['limit']!r} is not a limit; write `every time`, `once per lead`, "
                  "`once per lead per 30d` or `at most 3 per 7d`")
        return None
    if match.group("every"):
        return ast.EVERY_TIME
    whom = {"person": "lead"}.get(match.group("whom") or "", match.group("whom"))
    about = str(rule.get("about", "lead"))
    if whom and whom != about:  # a limit counts per the rule's own record; saying otherwise would be untrue
        ctx.error(rule, "limit", join_path(path, "limit"),
                  f"this rule is about a {about}, so its limit counts per {about}; write "
                  f"`{text.replace('per ' + str(match.group('whom')), 'per ' + about, 1)}`, or make the rule "
                  f"`about: {whom}` to count per {whom}")
        return None
    times = 1 if match.group("once") else int(match.group("n"))
    per = None
    if match.group("per"):
        try:
            per = parse_duration(match.group("per"))
        except ValueError as exc:
            ctx.error(rule, "limit", join_path(path, "limit"), str(exc))
            return None
    if times < 1:
        ctx.error(rule, "limit", join_path(path, "limit"), "`at most 0` would never fire; set `mode: disabled` instead")
        return None
    return ast.Limit(times, per, text)


def read_per(ctx: ParseContext, rule: MarkedDict, path: str, limit: ast.Limit | None,
             cooldown: Duration | None) -> ast.PerKey | None:
    """`per: ticket_id` (an event property) or `per: deal.close_date` (a record's): limits count per value."""

    if "per" not in rule:
        return None
    value = rule["per"]
    match = _PER.match(value.strip()) if isinstance(value, str) else None
    if not match:
        ctx.error(rule, "per", join_path(path, "per"),
                  f"{value!r}: `per:` names one property whose value the limit counts by, e.g. `per: ticket_id` "
                  "(the event's) or `per: deal.close_date` (a record's)")
        return None
    if limit is not None and limit.times is None and cooldown is None:
        ctx.error(rule, "per", join_path(path, "per"),
                  "`per:` counts the limit and cooldown per value, but this rule fires every time and has no "
                  "cooldown; write e.g. `limit: once` (once per value) or drop `per:`")
        return None
    return ast.PerKey(match.group("scope") or "event", match.group("name"), value.strip())


def read_message_policy(ctx: ParseContext, msg: MarkedDict, calendar_timezone: str) -> ast.MessagePolicy:
    """`messages:` — a cap per person and quiet hours, in the calendar's zone unless they name their own."""

    report_unknown_keys(ctx, msg, {"max_per_person", "quiet_hours"}, "messages")
    cap = per = None
    if "max_per_person" in msg:
        match = re.fullmatch(r"\s*(\d+)\s+per\s+(\S+)\s*", str(msg["max_per_person"]))
        if not match:
            ctx.error(msg, "max_per_person", "messages.max_per_person", "write e.g. `3 per 7d`")
        else:
            cap = int(match.group(1))
            try:
                per = parse_duration(match.group(2))
            except ValueError as exc:
                ctx.error(msg, "max_per_person", "messages.max_per_person", str(exc))
    quiet = None
    if isinstance(msg.get("quiet_hours"), MarkedDict):
        q = msg["quiet_hours"]
        report_unknown_keys(ctx, q, {"from", "to", "timezone"}, "messages.quiet_hours")
        start = read_time_of_day(ctx, q, "from", "messages.quiet_hours.from") if "from" in q else None
        end = read_time_of_day(ctx, q, "to", "messages.quiet_hours.to") if "to" in q else None
        tz = read_timezone(ctx, q, "timezone", "messages.quiet_hours.timezone") if "timezone" in q else calendar_timezone
        if start and end and tz:
            quiet = ast.QuietHours(start, end, tz)
        elif "from" not in q or "to" not in q:
            ctx.error(msg, "quiet_hours", "messages.quiet_hours", "quiet hours need `from:` and `to:`, e.g. 21:00 and 08:00")
    return ast.MessagePolicy(cap, per, quiet)
