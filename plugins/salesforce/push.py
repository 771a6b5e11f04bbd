"""Outbox items → Salesforce REST calls (through simple-salesforce), one small function per action type.

Which record: the item's `salesforce_id` identity (its key prefix says Lead, Contact, Account or Opportunity);
for a lead without one, the newest Contact, else unconverted Lead, with its email. A Lead that Salesforce has
converted cannot be edited any more, so writes to it go to the Contact it became.

Idempotency (a retry after a crash must not act twice), per action:

- `set`: absolute values; writing them twice is harmless.
- `tag` / `untag`: read the tags field, add or remove one tag, write only if it changed; repeating is a no-op.
- `score`: the score crmrules holds after the decision (`item.record["score"]`), written as an absolute value,
  so a retry writes the same number. Items without it (older outboxes) fall back to read, add, write.
- `task` and `message`: the idempotency key is stored on the Task and looked up before creating one: in the
  custom field `task_key_field` when configured (a plain equality query), else as the last line of the
  Description (`crmrules-key: <key>`). Description is a long text area and SOQL cannot filter on it, so the
  lookup narrows by WhoId/WhatId and Subject (both filterable) and matches the marker in Python.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from zoneinfo import ZoneInfo

import requests
from simple_salesforce.format import format_soql

from crmrules.api import ActionNotSupported, OutboxItem, PushFailed

from .client import Api
from .records import KEY_PREFIXES, sobject_of, to18
from .settings import API_NAME, SalesforceSettings

T = TypeVar("T")
PEOPLE = ("Lead", "Contact")
USER_ID = re.compile(r"^005[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?$")


@dataclass
class Target:
    sobject: str
    id: str


def marker(key: str) -> str:
    return f"crmrules-key: {key}"


class Pusher:
    """Applies one outbox item; every Salesforce call goes through `Api.run` (which classifies failures)."""

    def __init__(self, item: OutboxItem, options: SalesforceSettings, session: requests.Session | None = None):
        self.item = item
        self.options = options
        self.session = session
        self._api: Api | None = None
        self.target = Target("", "")

    @property
    def api(self) -> Api:
        """Connected on first use, so an action we refuse costs no login and no API call."""

        if self._api is None:
            self._api = Api(self.options, self.session)
        return self._api

    # ------------------------------------------------------------------ which record

    def query(self, soql: str) -> list[dict[str, Any]]:
        return list(self.api.run(lambda sf: sf.query(soql)).get("records", []))

    def _find_target(self) -> Target:
        ids = self.item.identities
        sid = ids.get("salesforce_id")
        if sid:
            sid = to18(sid)
            sobject = sobject_of(sid)
            if sobject is None:
                raise PushFailed(f"salesforce_id {sid} is not the id of a {', '.join(KEY_PREFIXES.values())}")
            return Target(sobject, sid)
        email = ids.get("email")
        if self.item.entity_kind == "lead" and email and self.options.match_by_email:
            for sobject, extra in (("Contact", ""), ("Lead", " AND IsConverted != true")):
                rows = self.query(format_soql("SELECT Id FROM {:literal} WHERE Email = {}{:literal} "
                                              "ORDER BY LastModifiedDate DESC LIMIT 1", sobject, email, extra))
                if rows:
                    return Target(sobject, to18(rows[0]["Id"]))
            raise PushFailed(f"no Salesforce Contact or Lead has the email {email}")
        raise PushFailed(f"this {self.item.entity_kind} has no salesforce_id; crmrules knows it only as "
                         f"{', '.join(sorted(ids)) or 'nothing'}")

    def _converted_contact(self) -> str | None:
        rows = self.query(format_soql("SELECT Id, IsConverted, ConvertedContactId FROM Lead WHERE Id = {}",
                                      self.target.id))
        if rows and rows[0].get("IsConverted") in (True, "true") and rows[0].get("ConvertedContactId"):
            return to18(str(rows[0]["ConvertedContactId"]))
        return None

    def on_live_record(self, write: Callable[[Target], T]) -> T:
        """Run `write`; if Salesforce says the Lead was converted, run it once more on the Contact it became."""

        try:
            return write(self.target)
        except PushFailed as exc:
            text = str(exc).upper()
            if self.target.sobject != "Lead" or ("CONVERTED_LEAD" not in text and "CONVERTED LEAD" not in text):
                raise
            contact = self._converted_contact()
            if contact is None:
                raise
            self.target = Target("Contact", contact)
            return write(self.target)

    def read(self, fields: list[str]) -> dict[str, Any]:
        """Current values of some fields; a converted Lead is swapped for its Contact before anything is written."""

        extra = ["IsConverted", "ConvertedContactId"] if self.target.sobject == "Lead" else []
        names = list(dict.fromkeys(["Id", *fields, *extra]))
        soql = format_soql("SELECT {:literal} FROM {:literal} WHERE Id = {}", ", ".join(names),
                           self.target.sobject, self.target.id)
        rows = self.query(soql)
        if not rows:
            raise PushFailed(f"{self.target.sobject} {self.target.id} not found in Salesforce (deleted or merged?)")
        row = rows[0]
        if row.get("IsConverted") in (True, "true") and row.get("ConvertedContactId"):
            self.target = Target("Contact", to18(str(row["ConvertedContactId"])))
            return self.read(fields)
        return row

    def update(self, target: Target, fields: dict[str, Any]) -> None:
        self.api.run(lambda sf: getattr(sf, target.sobject).update(target.id, fields))

    # ------------------------------------------------------------------ actions

    def push(self) -> str:
        """Check the action is one we apply (before any call to Salesforce), find the record, apply it."""

        action: Any = self.item.action
        handler = getattr(self, f"do_{action.type}", None)
        if handler is None:
            name = action.type if action.type != "custom" else f"custom action {action.name!r}"
            raise ActionNotSupported(f"the Salesforce plugin cannot apply {name} (it pushes set, tag, untag, "
                                     "score, task and message)")
        if action.type == "message" and action.channel != "email":
            raise ActionNotSupported(f"the Salesforce plugin sends email messages, not channel {action.channel!r}")
        self.target = self._find_target()
        return str(handler())

    def do_set(self) -> str:
        mapping = self.options.field_map(self.target.sobject)
        fields: dict[str, Any] = {}
        for name, value in self.item.action.properties.items():  # type: ignore[union-attr]
            field = mapping.get(name, name)
            if not API_NAME.fullmatch(field):
                raise PushFailed(f"property {name!r} has no Salesforce field; map it under plugins.salesforce."
                                 f"fields (e.g. {{{name}: Some_Field__c}})")
            fields[field] = value
        if not fields:
            return "nothing to set"
        self.on_live_record(lambda t: self.update(t, fields))
        return f"{self.target.sobject} {self.target.id}: set {', '.join(fields)}"

    def do_tag(self, remove: bool = False) -> str:
        tag = str(self.item.action.tag).strip()  # type: ignore[union-attr]
        if not tag or ";" in tag:
            raise PushFailed(f"tag {tag!r} cannot be stored in a `;`-separated field")
        field = self.options.tags_field
        row = self.read([field])
        tags = [t.strip() for t in str(row.get(field) or "").split(";") if t.strip()]
        present = any(t.casefold() == tag.casefold() for t in tags)
        if present != remove:
            return f"{self.target.sobject} {self.target.id}: tags unchanged ({tag} {'absent' if remove else 'present'})"
        tags = [t for t in tags if t.casefold() != tag.casefold()] if remove else [*tags, tag]
        self.update(self.target, {field: ";".join(tags) or None})
        return f"{self.target.sobject} {self.target.id}: {'untagged' if remove else 'tagged'} {tag}"

    def do_untag(self) -> str:
        return self.do_tag(remove=True)

    def do_score(self) -> str:
        field = self.options.score_field
        if "score" in self.item.record:
            after = round(float(self.item.record["score"]), 4)
            value_after: float | int = int(after) if after.is_integer() else after
            self.update(self.target, {field: value_after})
            return f"{self.target.sobject} {self.target.id}: {field} = {value_after:g}"
        row = self.read([field])
        try:
            current = float(row.get(field) or 0)
        except (TypeError, ValueError):
            raise PushFailed(f"{self.target.sobject}.{field} holds {row.get(field)!r}, not a number") from None
        total = round(current + float(self.item.action.points), 4)  # type: ignore[union-attr]
        value: float | int = int(total) if total.is_integer() else total
        self.update(self.target, {field: value})
        return f"{self.target.sobject} {self.target.id}: {field} {current:g} → {value:g}"

    def do_task(self) -> str:
        action: Any = self.item.action
        fields: dict[str, Any] = {"Subject": _one_line(action.title), "Priority": self.priority(action.priority)}
        if self.options.task_type:
            fields["Type"] = self.options.task_type
        decided = self.item.due_at - float(action.after or 0)
        if action.due_in is not None:
            due = dt.datetime.fromtimestamp(decided + float(action.due_in), dt.timezone.utc)
            fields.update(ActivityDate=due.astimezone(ZoneInfo(self.options.timezone)).date().isoformat(),
                          ReminderDateTime=_sf_datetime(due), IsReminderSet=True)
        owner, note = self.owner(action.owner)
        if owner:
            fields["OwnerId"] = owner
        return self.create_task(fields, action.body) + note

    def do_message(self) -> str:
        action: Any = self.item.action
        subject = _one_line(action.subject or (action.body.strip().splitlines() or ["Email"])[0])
        if self.options.message_mode == "email":
            return self.send_email(subject, action.body)
        decided = self.item.due_at - float(action.after or 0)
        day = dt.datetime.fromtimestamp(decided, dt.timezone.utc).astimezone(ZoneInfo(self.options.timezone))
        fields = {"Subject": subject, "Type": "Email", "TaskSubtype": "Email", "Priority": self.priority("medium"),
                  "ActivityDate": day.date().isoformat()}
        return self.create_task(fields, action.body)

    # ------------------------------------------------------------------ tasks

    def priority(self, level: str) -> str:
        return self.options.priorities.get(level, level.capitalize())

    def owner(self, owner: str | None) -> tuple[str | None, str]:
        """A User id for a rule's `owner:` (an id, a name in `owners`, or a username/email); else the default."""

        if not owner:
            return None, ""
        owner = self.options.owners.get(owner, owner).strip()
        if USER_ID.fullmatch(owner):
            return to18(owner), ""
        if "@" in owner:
            try:
                rows = self.query(format_soql("SELECT Id FROM User WHERE IsActive = true AND "
                                              "(Username = {0} OR Email = {0}) LIMIT 1", owner))
            except PushFailed:
                rows = []
            if rows:
                return to18(rows[0]["Id"]), ""
        return None, f" (owner {owner!r} not found in Salesforce: left to the default owner)"

    def link(self, target: Target) -> str:
        return "WhoId" if target.sobject in PEOPLE else "WhatId"

    def existing_task(self, target: Target, subject: str) -> str | None:
        key = self.item.idempotency_key
        if self.options.task_key_field:
            rows = self.query(format_soql("SELECT Id FROM Task WHERE {:literal} = {} LIMIT 1",
                                          self.options.task_key_field, key))
            return to18(rows[0]["Id"]) if rows else None
        rows = self.query(format_soql("SELECT Id, Description FROM Task WHERE {:literal} = {} AND Subject = {} "
                                      "ORDER BY CreatedDate DESC LIMIT 200", self.link(target), target.id, subject))
        found = [r["Id"] for r in rows if marker(key) in str(r.get("Description") or "")]
        return to18(found[0]) if found else None

    def create_task(self, fields: dict[str, Any], body: str) -> str:
        """Create the Task once: look for one carrying this item's key first (see the module docstring)."""

        key = self.item.idempotency_key
        description = (body or "").rstrip()
        if self.options.task_key_field:
            fields[self.options.task_key_field] = key
        else:
            description = f"{description}\n\n{marker(key)}" if description else marker(key)
        fields["Description"] = description

        def create(target: Target) -> str:
            existing = self.existing_task(target, fields["Subject"])
            if existing:
                return f"Task {existing} (created before; not created twice)"
            data = {**fields, self.link(target): target.id}
            created = self.api.run(lambda sf: getattr(sf, "Task").create(data))  # sf.Task: a union mypy cannot call
            return f"Task {to18(created['id'])}"

        if self.target.sobject == "Lead":
            self.read([])  # a converted Lead takes no new tasks; put them on the Contact it became
        return self.on_live_record(create)

    def send_email(self, subject: str, body: str) -> str:
        """Send through the emailSimple action, then log a completed Email Task carrying the key.

        The log is what makes a retry find "already sent"; a crash between sending and logging sends twice.
        """

        row = self.read(["Email"]) if self.target.sobject in PEOPLE else {}
        address = row.get("Email") or self.item.identities.get("email")
        if not address:
            raise PushFailed(f"{self.target.sobject} {self.target.id} has no email address")
        log_subject = _one_line(f"Email: {subject}")
        existing = self.existing_task(self.target, log_subject)
        if existing:
            return f"email sent before (Task {existing}); not sent twice"
        email: dict[str, Any] = {"emailAddresses": address, "emailSubject": subject, "emailBody": body}
        if self.options.email_sender_type:
            email["senderType"] = self.options.email_sender_type
        if self.options.email_sender_address:
            email["senderAddress"] = self.options.email_sender_address
        answer = self.api.run(lambda sf: sf.restful("actions/standard/emailSimple", method="POST",
                                                    data=json.dumps({"inputs": [email]})))
        results = answer if isinstance(answer, list) else [answer or {}]
        failed = [r for r in results if not r.get("isSuccess")]
        if failed:
            problems = "; ".join(f"{e.get('statusCode', '?')}: {e.get('message', '')}"
                                 for r in failed for e in (r.get("errors") or [{}]))
            raise PushFailed(f"Salesforce did not send the email: {problems}")
        fields = {"Subject": log_subject, "Type": "Email", "TaskSubtype": "Email", "Status": "Completed",
                  "Priority": self.priority("medium"),
                  "ActivityDate": dt.datetime.now(ZoneInfo(self.options.timezone)).date().isoformat()}
        logged = self.create_task(fields, body)
        return f"email sent to {address}; {logged}"


def _one_line(text: str) -> str:
    """Task.Subject is one line of at most 255 characters."""

    return " ".join(str(text).split())[:255] or "crmrules"


def _sf_datetime(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def push(item: OutboxItem, options: SalesforceSettings, session: requests.Session | None = None) -> str:
    if item.shadow:
        return "shadow: not pushed"
    return Pusher(item, options, session).push()
