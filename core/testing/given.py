"""Reading what a case starts with and what happens in it: its records (`lead:`, or named `records:`) and its
events (`event:`, `update:`, `merge:`), each mistake at its file:line:column."""

from __future__ import annotations

import datetime as dt
import difflib
from typing import Any, Collection, Mapping

from ..actions import ActionType
from ..language import RuleError, ast
from ..language.yamlmarks import MarkedDict, MarkedList
from ..models import ENTITY_KINDS
from .patterns import plain
from .shapes import EVENT_KEYS, RECORD_KEYS, TRUSTED_SOURCE, VISITOR_IDS, Case, EventSpec, Mark, Record
from .times import DEFAULT_START, when


class Reader:
    """Reports every mistake of one case, located; the case is run only if there is none."""

    def __init__(self, file: str, pack: ast.Pack, table: Mapping[str, ActionType], path: str,
                 sources: Collection[str] | None = None):
        self.file, self.pack, self.table, self.path = file, pack, table, path
        self.sources = sorted(sources) if sources is not None else None  # None: any name
        self.rules = sorted(r.id for r in pack.rules)
        self.errors: list[RuleError] = []
        self.start = when(dt.datetime.now(dt.timezone.utc), DEFAULT_START)

    # ---------------------------------------------------------------- reporting

    def error(self, mark: Mark, where: str, message: str) -> None:
        self.errors.append(RuleError(self.file, mark[0], mark[1], where, message))

    def keys(self, mapping: MarkedDict, allowed: tuple[str, ...], where: str, what: str) -> bool:
        ok = True
        for key in mapping:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"{what} takes {', '.join(allowed)}"
            self.error(mapping.key_marks[key], where, f"unknown field {key!r}; {hint}")
            ok = False
        return ok

    def name_of(self, value: Any, mark: Mark, where: str, names: list[str], what: str) -> str | None:
        if isinstance(value, str) and value in names:
            return value
        close = difflib.get_close_matches(str(value), names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        self.error(mark, where, f"no {what} {value!r}; {hint}({what}s: {', '.join(names) or 'none'})")
        return None

    def rule_id(self, value: Any, mark: Mark, where: str) -> str | None:
        text = str(value)
        if text.startswith(f"{self.pack.name}/"):  # `pack/rule`, as `explain` and the outbox print it
            text = text[len(self.pack.name) + 1:]
        if isinstance(value, str) and text in self.rules:
            return text
        close = difflib.get_close_matches(text, self.rules, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        self.error(mark, where, f"no rule {value!r} in pack {self.pack.name}; {hint}(rules: {', '.join(self.rules)})")
        return None

    def source(self, value: Any, mark: Mark, where: str) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.error(mark, where, "`source:` names a source, e.g. web (the website tracker, untrusted)")
            return None
        if self.sources is not None and value not in self.sources:
            return self.name_of(value, mark, where, self.sources, "source")
        return value

    def time(self, base: dt.datetime, value: Any, mark: Mark, where: str) -> dt.datetime | None:
        try:
            return when(base, value)
        except ValueError as exc:
            self.error(mark, where, str(exc))
            return None

    # ---------------------------------------------------------------- a case

    def records(self, raw: MarkedDict, case: Case) -> None:
        single = [k for k in ENTITY_KINDS if k in raw]
        if "records" in raw:
            if single:
                self.error(raw.key_marks[single[0]], f"{self.path}.{single[0]}",
                           "a case gives either `records:` or `lead:`/`account:`/`deal:`, not both")
            self.named_records(raw["records"], raw.value_marks["records"], case)
            return
        for kind in single:
            value = raw[kind]
            if not isinstance(value, dict):
                self.error(raw.value_marks[kind], f"{self.path}.{kind}",
                           f"`{kind}:` takes the record's fields, e.g. {{email: kim@example.com, first_name: 유진}}")
                continue
            case.records[kind] = Record(kind, kind, plain(value))

    def named_records(self, value: Any, mark: Mark, case: Case) -> None:
        where = f"{self.path}.records"
        case.named = True
        if not isinstance(value, MarkedDict) or not value:
            self.error(mark, where, "`records:` names each record: {kim: {lead: {email: kim@example.com}}, "
                                    "acme: {account: {name: 에이스상사}}}")
            return
        for name, spec in value.items():
            at, here = value.value_marks[name], f"{where}.{name}"
            if not isinstance(spec, MarkedDict):
                self.error(at, here, "a record is `{lead: {fields...}}` (or account:, deal:), with optional "
                                     "`with:` and `source:`")
                continue
            self.keys(spec, RECORD_KEYS, here, "a record")
            kinds = [k for k in ENTITY_KINDS if k in spec]
            if len(kinds) != 1:
                self.error(at, here, "a record is one of `lead:`, `account:` or `deal:` with its fields")
                continue
            kind = kinds[0]
            fields = spec[kind]
            if not isinstance(fields, dict):
                self.error(spec.value_marks[kind], f"{here}.{kind}", f"`{kind}:` takes the record's fields")
                continue
            source = TRUSTED_SOURCE
            if "source" in spec:
                source = self.source(spec["source"], spec.value_marks["source"], f"{here}.source") or TRUSTED_SOURCE
            record = Record(str(name), kind, plain(fields), source=source)
            if not record.trusted and not any(k in record.fields for k in VISITOR_IDS):
                self.error(spec.value_marks[kind], f"{here}.{kind}", f"a record from {source} is known by its visitor "
                                                                     "id: give it anonymous_id or user_id")
            links = spec.get("with", [])
            record.links = [links] if isinstance(links, str) else list(links) if isinstance(links, list) else []
            if not isinstance(links, (str, list)):
                self.error(spec.value_marks["with"], f"{here}.with", "`with:` names records, e.g. `with: acme`")
            case.records[str(name)] = record
        names = sorted(case.records)
        for name, record in case.records.items():
            spec = value[name]
            for i, link in enumerate(record.links):
                marks = spec["with"].item_marks if isinstance(spec["with"], MarkedList) else [spec.value_marks["with"]]
                self.name_of(link, marks[i], f"{where}.{name}.with", [n for n in names if n != name], "record")

    # ---------------------------------------------------------------- events

    def events(self, raw: MarkedDict, case: Case) -> None:
        events = raw.get("events")
        if events is None:
            return
        if not isinstance(events, MarkedList):
            self.error(raw.value_marks.get("events", raw.mark), f"{self.path}.events",
                       "`events:` is a list: [{at: +0d, event: page_view, path: /pricing}, ...]")
            return
        for n, item in enumerate(events):
            spec = self.event(item, events.item_marks[n], f"{self.path}.events[{n}]", case)
            if spec is not None:
                case.events.append(spec)

    def event(self, item: Any, mark: Mark, where: str, case: Case) -> EventSpec | None:
        if not isinstance(item, MarkedDict):
            self.error(mark, where, "an event is `{at: +1d, event: page_view, ...}` or `{at: +1d, update: {...}}`")
            return None
        kinds = [k for k in ("event", "update", "merge") if k in item]
        if len(kinds) != 1:
            if kinds:
                self.error(item.key_marks[kinds[1]], where, "an event has one of `event:`, `update:` and `merge:`")
                return None
            for key in item:
                close = difflib.get_close_matches(str(key), ["event", "update", "merge"], n=1)
                if close:
                    self.error(item.key_marks[key], where, f"unknown field {key!r}; did you mean {close[0]!r}?")
                    return None
            self.error(mark, where, "an event needs `event: <type>` (or `update: {fields}` or `merge: <record>`)")
            return None
        kind = kinds[0]
        ok = self.near_misses(item, where, kind)
        at = self.time(case.start, item.get("at", "+0s"), item.value_marks.get("at", mark), f"{where}.at")
        if kind == "merge":  # about the record that stays (`into:`), read with the merge
            about, email = (item["into"] if item.get("into") in case.records else None), None
            for key in ("about", "lead"):
                if key in item:
                    self.error(item.key_marks[key], where, "a merge is about the record that stays: `into:`")
                    ok = False
        else:
            about, email = self.subject(item, where, case)
        source: str | None = case.records[about].source if about in case.records else TRUSTED_SOURCE
        if "source" in item:
            source = self.source(item["source"], item.value_marks["source"], f"{where}.source")
            ok = ok and source is not None
        props = item.get("properties", {})
        if not isinstance(props, dict):
            self.error(item.value_marks["properties"], f"{where}.properties", "`properties:` is a mapping")
            ok = False
            props = {}
        for container in (item, props, item.get("update")):
            for key in (container if isinstance(container, dict) else ()):
                if not isinstance(key, str):
                    marks = getattr(container, "key_marks", {})
                    self.error(marks.get(key, mark), where, f"{key!r}: a field's name is text (quote it: '{key}')")
                    ok = False
        spec = EventSpec(at or case.start, "", about, plain(props), str(source), email)
        if kind == "event":
            etype = item["event"]
            if not isinstance(etype, (str, int)) or not str(etype).strip() or " " in str(etype):
                self.error(item.value_marks["event"], f"{where}.event", "an event type is one word, e.g. page_view")
                ok = False
            spec.type = str(etype)
            spec.properties.update({k: plain(v) for k, v in item.items() if k not in EVENT_KEYS})
        else:
            extra = [k for k in item if k not in EVENT_KEYS]
            for key in extra:
                self.error(item.key_marks[key], where, f"unknown field {key!r}: an `{kind}:` event takes no "
                                                       "properties of its own" + (" (put fields inside `update:`)"
                                                                                  if kind == "update" else ""))
                ok = False
        if kind == "update":
            if not isinstance(item["update"], dict) or not item["update"]:
                self.error(item.value_marks["update"], f"{where}.update", "`update:` takes fields and values")
                ok = False
            spec.type = "record_update"
            spec.properties = plain(item["update"]) if isinstance(item["update"], dict) else {}
        elif kind == "merge":
            ok = self.merge(item, where, case, spec) and ok
        elif "into" in item:
            self.error(item.key_marks["into"], where, "`into:` goes with `merge:`")
            ok = False
        return spec if ok and at is not None and (spec.about is not None or email is not None) else None

    def near_misses(self, item: MarkedDict, where: str, kind: str) -> bool:
        """Keys beside `event:` are the event's properties, so `abuot: account` would be a property: a key one
        typo away from a field an event has (`about`, `source`, `properties`, a merge's `into`) is an error; a
        property of such a name goes under `properties:`."""

        reserved = ["about", "source", "properties"] + (["into"] if kind == "merge" else [])
        ok = True
        for key in item:
            if key in EVENT_KEYS:
                continue
            close = [r for r in reserved if r not in item and _one_typo(str(key), r)]
            if close:
                self.error(item.key_marks[key], where, f"unknown field {key!r}; did you mean {close[0]!r}? (a "
                                                       "property of that name goes under `properties:`)")
                ok = False
        return ok

    def subject(self, item: MarkedDict, where: str, case: Case) -> tuple[str | None, str | None]:
        """Whom an event is about: (record name, None) or (None, email of a lead known by nothing else)."""

        names = sorted(case.records)
        if "about" in item and "lead" in item:
            self.error(item.key_marks["lead"], where, "an event names its record once: `about:` or `lead:`")
            return None, None
        if "lead" in item:
            value = item["lead"]
            if isinstance(value, str) and value in case.records and case.records[value].kind == "lead":
                return value, None
            if isinstance(value, str) and "@" in value:
                return None, value
            self.name_of(value, item.value_marks["lead"], f"{where}.lead",
                         [n for n in names if case.records[n].kind == "lead"], "lead")
            return None, None
        if "about" in item:
            value = item["about"]
            if isinstance(value, str) and value in case.records:
                return value, None
            if not case.named and value in ENTITY_KINDS:  # a record of that kind the case did not give
                case.records[value] = Record(value, value, {}, given=False)
                return value, None
            self.name_of(value, item.value_marks["about"], f"{where}.about", names, "record")
            return None, None
        if not case.records:
            case.records["lead"] = Record("lead", "lead", {}, given=False)
        if not case.named:
            return next(k for k in ENTITY_KINDS if k in case.records), None
        if len(case.records) == 1:
            return names[0], None
        self.error(item.mark, where, f"which record is this event about? add `about:` ({', '.join(names)})")
        return None, None

    def merge(self, item: MarkedDict, where: str, case: Case, spec: EventSpec) -> bool:
        names = sorted(case.records)
        merged = self.name_of(item["merge"], item.value_marks["merge"], f"{where}.merge", names, "record") \
            if case.named else None
        if not case.named:
            self.error(item.key_marks["merge"], f"{where}.merge", "`merge:` names records: give the case `records:`")
            return False
        if "into" not in item:
            self.error(item.key_marks["merge"], where, "a merge says which record stays: `{merge: kim-2, into: kim}`")
            return False
        into = self.name_of(item["into"], item.value_marks["into"], f"{where}.into", names, "record")
        if merged is None or into is None:
            return False
        if case.records[merged].kind != case.records[into].kind or merged == into:
            self.error(item.mark, where, "a merge joins two different records of one kind")
            return False
        spec.type, spec.about, spec.merged = "merge", into, merged
        return True

    # ---------------------------------------------------------------- expectations


def _one_typo(text: str, word: str) -> bool:
    """One letter wrong, missing, extra, or two neighbours swapped (`abuot`, `sorce`, `sourcee`)."""

    if text == word or abs(len(text) - len(word)) > 1:
        return False
    if len(text) == len(word):
        diff = [i for i, (a, b) in enumerate(zip(text, word)) if a != b]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and text[diff[0]] == word[diff[1]] and text[diff[1]] == word[diff[0]])
    short, long = sorted((text, word), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))
