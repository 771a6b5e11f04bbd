"""The embedded store: one SQLite file in WAL mode holding the inbox, entities, timers, decisions and outbox.

Why SQLite: a sidecar needs durability with no server to run. Every evaluation's writes (state, decisions,
outbox rows, timers and the inbox row's status) commit in one transaction, so a crash leaves either all of an
event's effects or none, and the unique keys (inbox source+key, outbox idempotency key) make redelivery and
replay harmless. One connection per thread; writers serialise on SQLite's lock (busy_timeout).

Why one module of ~600 lines: it is one class over one schema, each method a statement or two that leans on the
tables and indexes declared at the top and on the same transaction machinery; split by role, each part would
need the whole schema beside it. What each method promises is in protocols.py, not here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Sequence, cast

from ..models import Decision, Event, OutboxItem
from .protocols import (DueTimer, IdPair, JSONObject, OutboxRow, OutboxStatus, PendingOrder, Pruned, Store,
                        StoreUnavailable, TimerSpec, WaitingTimer)
from .sealing import Sealer

if TYPE_CHECKING:
    from ..config import Retention

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  source TEXT NOT NULL, key TEXT NOT NULL,
  received_at REAL NOT NULL, occurred_at REAL NOT NULL,
  payload TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending',  -- pending | done | rejected | pruned (done, payload removed: key only)
  error TEXT,
  UNIQUE (source, key)
);
CREATE INDEX IF NOT EXISTS inbox_pending ON inbox (status, seq);
CREATE TABLE IF NOT EXISTS identities (
  entity_kind TEXT NOT NULL, id_kind TEXT NOT NULL, value TEXT NOT NULL, entity_id TEXT NOT NULL,
  trusted INTEGER NOT NULL DEFAULT 1,  -- 0: only an untrusted source (the public tracker) linked it
  PRIMARY KEY (entity_kind, id_kind, value)
);
CREATE INDEX IF NOT EXISTS identities_entity ON identities (entity_id);
CREATE TABLE IF NOT EXISTS entities (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL  -- rowid keeps creation order
);
CREATE TABLE IF NOT EXISTS merges (from_id TEXT PRIMARY KEY, into_id TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS timers (
  entity_id TEXT NOT NULL, rule_key TEXT NOT NULL, key TEXT NOT NULL,
  due_at REAL NOT NULL, leaf TEXT NOT NULL DEFAULT '', payload TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (entity_id, rule_key, key)
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at);
CREATE TABLE IF NOT EXISTS decisions (
  id TEXT PRIMARY KEY, rule TEXT NOT NULL, pack TEXT NOT NULL, rule_version TEXT NOT NULL,
  entity_id TEXT NOT NULL, entity_kind TEXT NOT NULL, trigger TEXT NOT NULL, at REAL NOT NULL,
  outcome TEXT NOT NULL, reason TEXT NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_entity ON decisions (entity_id, at);
CREATE TABLE IF NOT EXISTS outbox (
  key TEXT PRIMARY KEY, decision_id TEXT NOT NULL, rule TEXT NOT NULL, entity_id TEXT NOT NULL,
  action_type TEXT NOT NULL, body TEXT NOT NULL, due_at REAL NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending',  -- pending | sending | sent | dead | cancelled | replayed (never pushed)
  attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, last_error TEXT,
  created_at REAL NOT NULL, sent_at REAL, result TEXT,
  claimed_by TEXT  -- while 'sending': host:pid:token of the process pushing it
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_at);
CREATE INDEX IF NOT EXISTS outbox_entity ON outbox (entity_id, rule);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


_LIVE_OUTBOX = ('pending', 'sending', 'dead')


class SQLiteStore:
    """The `Store` (see protocols.py for what each method promises) on one SQLite file."""

    def __init__(self, path: str | Path, key: str | None = None):
        self.path = str(path)
        self.sealer = Sealer(key)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # This process's writers queue here before BEGIN IMMEDIATE. SQLite's own busy handler polls with sleeps
        # of up to 100 ms, so a receiver thread waiting on it nearly always lost the lock to the worker, which
        # starts its next batch at once (acknowledgements waited seconds). A thread lock hands over on release.
        # Other processes still meet busy_timeout.
        self._writer = threading.Lock()
        self._conn().executescript(SCHEMA)  # executescript commits by itself
        self._migrate()

    def _migrate(self) -> None:
        """Columns and indexes added after a store file was created."""

        try:  # retention deletes decisions by time; without it every pass would scan the whole audit trail
            self._conn().execute("CREATE INDEX IF NOT EXISTS decisions_at ON decisions (at)")
        except sqlite3.OperationalError:  # a read-only file: only prune needs it
            pass

        columns = {r["name"] for r in self._conn().execute("PRAGMA table_info(outbox)")}
        if "claimed_by" not in columns:
            try:
                self._conn().execute("ALTER TABLE outbox ADD COLUMN claimed_by TEXT")
            except sqlite3.OperationalError:  # a read-only file: readers do not need the column
                pass
        columns = {r["name"] for r in self._conn().execute("PRAGMA table_info(identities)")}
        if "trusted" not in columns:  # links made before trust was kept per link count as before: trusted
            try:
                self._conn().execute("ALTER TABLE identities ADD COLUMN trusted INTEGER NOT NULL DEFAULT 1")
            except sqlite3.OperationalError:
                pass

    # ------------------------------------------------------------------ connections and transactions

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Nested calls join the outer transaction; the outermost commits or rolls back."""

        conn = self._conn()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        if not self._writer.acquire(timeout=30):
            raise StoreUnavailable("database is locked (another thread of this process kept writing for 30 s)")
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(str(exc)) from exc
            self._local.depth = 1
            try:
                yield conn
            except BaseException:
                self._local.depth = 0
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    pass
                raise
            self._local.depth = 0
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    pass
                raise StoreUnavailable(str(exc)) from exc
        finally:
            self._writer.release()

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass
            self._all.clear()
        self._local = threading.local()

    # ------------------------------------------------------------------ inbox

    def accept(self, event: Event, received_at: float | None = None) -> bool:
        """Durably accept an event; False when (source, id) was accepted before."""

        return self.accept_many([event], received_at)[0]

    def accept_many(self, events: Sequence[Event], received_at: float | None = None) -> list[bool]:
        now = received_at if received_at is not None else time.time()
        results = []
        try:
            with self.transaction() as db:
                for event in events:
                    cur = db.execute(
                        "INSERT OR IGNORE INTO inbox (source, key, received_at, occurred_at, payload) VALUES (?,?,?,?,?)",
                        (event.source, event.id, now, event.ts(), self.sealer.seal(event.model_dump_json())),
                    )
                    results.append(cur.rowcount == 1)
        except sqlite3.OperationalError as exc:  # disk full, read-only
            raise StoreUnavailable(str(exc)) from exc
        return results

    def pending(self, limit: int = 100, order: PendingOrder = "arrival") -> list[tuple[int, Event]]:
        sort = "occurred_at, seq" if order == "event_time" else "seq"
        rows = self._conn().execute(
            f"SELECT seq, payload FROM inbox WHERE status='pending' ORDER BY {sort} LIMIT ?", (limit,)
        ).fetchall()
        out: list[tuple[int, Event]] = []
        for r in rows:
            try:
                out.append((r["seq"], Event.model_validate_json(self.sealer.open(r["payload"]))))
            except ValueError as exc:  # stored before validation refused it: set aside, never blocking the inbox
                self.finish(r["seq"], "rejected", f"unreadable event: {exc}"[:2000])
        return out

    def finish(self, seq: int, status: Literal["done", "rejected"] = "done", error: str | None = None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE inbox SET status=?, error=? WHERE seq=?", (status, error, seq))

    def finish_many(self, seqs: Sequence[int]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE inbox SET status='done' WHERE seq=?", [(s,) for s in seqs])

    def inbox_depth(self) -> int:
        """Events accepted but not yet evaluated (uses the status index; cheap enough for every scrape)."""

        depth: int = self._conn().execute("SELECT count(*) FROM inbox WHERE status='pending'").fetchone()[0]
        return depth

    def inbox_counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT status, count(*) AS n FROM inbox GROUP BY status").fetchall()
        return {r["status"]: r["n"] for r in rows}

    def events_of(self, entity_id: str) -> list[Event]:
        """Every evaluated event about this entity (or a record merged into it) whose payload retention still
        keeps (`pruned` rows have none), in event time."""

        ids = [entity_id] + [r[0] for r in self._conn().execute("SELECT from_id FROM merges WHERE into_id=?", (entity_id,))]
        keys = self._conn().execute(
            f"SELECT id_kind, value, entity_kind FROM identities WHERE entity_id IN ({','.join('?' * len(ids))})", ids
        ).fetchall()
        wanted = {(k["entity_kind"], k["id_kind"], k["value"]) for k in keys}
        out = []
        for row in self._conn().execute("SELECT payload FROM inbox WHERE status='done' ORDER BY occurred_at, seq"):
            event = Event.model_validate_json(self.sealer.open(row["payload"]))
            refs = [event.subject, *event.related]
            if any((ref.kind, k, self.sealer.blind(v.lower() if k == "email" else v)) in wanted
                   for ref in refs for k, v in ref.ids.items()):
                out.append(event)
        return out

    # ------------------------------------------------------------------ identities and entities

    def lookup(self, entity_kind: str, pairs: Sequence[IdPair]) -> dict[IdPair, str]:
        db = self._conn()
        found = {}
        for id_kind, value in pairs:
            row = db.execute("SELECT entity_id FROM identities WHERE entity_kind=? AND id_kind=? AND value=?",
                             (entity_kind, id_kind, self.sealer.blind(value))).fetchone()
            if row:
                found[(id_kind, value)] = row["entity_id"]
        return found

    def lookup_links(self, entity_kind: str, pairs: Sequence[IdPair]) -> dict[IdPair, tuple[str, bool]]:
        """Like `lookup`, with whether a trusted source made each link."""

        db = self._conn()
        found = {}
        for id_kind, value in pairs:
            row = db.execute("SELECT entity_id, trusted FROM identities WHERE entity_kind=? AND id_kind=? AND value=?",
                             (entity_kind, id_kind, self.sealer.blind(value))).fetchone()
            if row:
                found[(id_kind, value)] = (row["entity_id"], bool(row["trusted"]))
        return found

    def link(self, entity_kind: str, pairs: Sequence[IdPair], entity_id: str, trusted: bool = True) -> None:
        """Point ids at an entity. A trusted link replaces any; an untrusted one only takes an id nobody has."""

        verb = "INSERT OR REPLACE" if trusted else "INSERT OR IGNORE"
        with self.transaction() as db:
            db.executemany(f"{verb} INTO identities (entity_kind, id_kind, value, entity_id, trusted) VALUES (?,?,?,?,?)",
                           [(entity_kind, k, self.sealer.blind(v), entity_id, int(trusted)) for k, v in pairs])

    def new_entity_id(self, kind: str) -> str:
        return f"{kind[0]}_{uuid.uuid4().hex[:16]}"

    def load_entity(self, entity_id: str) -> JSONObject | None:
        row = self._conn().execute("SELECT state FROM entities WHERE id=?", (entity_id,)).fetchone()
        return json.loads(self.sealer.open(row["state"])) if row else None

    _SAVE_ENTITY = ("INSERT INTO entities (id, kind, state, version, updated_at) VALUES (?,?,?,1,?) "
                    "ON CONFLICT(id) DO UPDATE SET state=excluded.state, version=version+1, "
                    "updated_at=excluded.updated_at")

    def save_entity(self, entity_id: str, kind: str, state: JSONObject) -> None:
        self.save_entities([(entity_id, kind, state, time.time())])

    def save_entities(self, rows: Sequence[tuple[str, str, JSONObject, float]]) -> None:
        """Several entities' states, (id, kind, state, updated_at) each, in one statement."""

        dumps, seal = json.dumps, self.sealer.seal
        with self.transaction() as db:
            db.executemany(self._SAVE_ENTITY, [
                (entity_id, kind, seal(dumps(state, ensure_ascii=False, separators=(",", ":"))), at)
                for entity_id, kind, state, at in rows])

    def entity_created_seq(self, entity_id: str) -> int:
        row = self._conn().execute("SELECT rowid FROM entities WHERE id=?", (entity_id,)).fetchone()
        seq: int = row[0] if row else 1 << 62
        return seq

    def merge_entities(self, from_id: str, into_id: str, at: float) -> None:
        """Point everything of `from_id` at `into_id`; the caller merges the states."""

        with self.transaction() as db:
            db.execute("UPDATE identities SET entity_id=? WHERE entity_id=?", (into_id, from_id))
            db.execute("UPDATE OR IGNORE timers SET entity_id=? WHERE entity_id=?", (into_id, from_id))
            db.execute("DELETE FROM timers WHERE entity_id=?", (from_id,))
            db.execute("UPDATE decisions SET entity_id=? WHERE entity_id=?", (into_id, from_id))
            db.execute("UPDATE outbox SET entity_id=? WHERE entity_id=?", (into_id, from_id))
            db.execute("DELETE FROM entities WHERE id=?", (from_id,))
            db.execute("UPDATE merges SET into_id=? WHERE into_id=?", (into_id, from_id))
            db.execute("INSERT OR REPLACE INTO merges (from_id, into_id, at) VALUES (?,?,?)", (from_id, into_id, at))

    def resolve_alias(self, entity_id: str) -> str:
        row = self._conn().execute("SELECT into_id FROM merges WHERE from_id=?", (entity_id,)).fetchone()
        into: str = row["into_id"] if row else entity_id
        return into

    def entities(self, kind: str | None = None) -> list[tuple[str, str, JSONObject]]:
        sql = "SELECT id, kind, state FROM entities" + (" WHERE kind=?" if kind else "") + " ORDER BY rowid"
        return [(r["id"], r["kind"], json.loads(self.sealer.open(r["state"])))
                for r in self._conn().execute(sql, (kind,) if kind else ())]

    def find_entity(self, text: str) -> str | None:
        """An entity by its id or any identity value (email, CRM id), or by its name property."""

        db = self._conn()
        row = db.execute("SELECT id FROM entities WHERE id=?", (text,)).fetchone()
        if row:
            found: str = row["id"]
            return found
        row = db.execute("SELECT entity_id FROM identities WHERE value=? OR value=? "
                         "ORDER BY trusted DESC, id_kind LIKE 'claimed:%'",  # a vouched record before a claimant
                         (self.sealer.blind(text), self.sealer.blind(text.lower()))).fetchone()
        if row:
            owner: str = row["entity_id"]
            return owner
        for entity_id, _kind, state in self.entities():
            props = state.get("props", {})
            from ..people import display_name

            if text in (props.get("name"), display_name(props)):
                return entity_id
        return None

    # ------------------------------------------------------------------ timers

    def upsert_timers(self, timers: Sequence[TimerSpec]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO timers (entity_id, rule_key, key, due_at, leaf, payload) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(entity_id, rule_key, key) DO UPDATE SET due_at=excluded.due_at, leaf=excluded.leaf, "
                "payload=excluded.payload",
                [(t.entity_id, t.rule_key, t.key, t.due_at, t.leaf, self.sealer.seal(json.dumps(t.payload, ensure_ascii=False)))
                 for t in timers],
            )

    def due_timers(self, until: float, limit: int = 500) -> list[DueTimer]:
        rows = self._conn().execute(
            "SELECT entity_id, rule_key, key, due_at, leaf, payload FROM timers WHERE due_at <= ? "
            "ORDER BY due_at, entity_id, rule_key, key LIMIT ?", (until, limit)).fetchall()
        return [cast(DueTimer, dict(r, payload=json.loads(self.sealer.open(r["payload"])))) for r in rows]

    def next_timer_at(self) -> float | None:
        row = self._conn().execute("SELECT min(due_at) AS t FROM timers").fetchone()
        earliest: float | None = row["t"]
        return earliest

    def delete_timer(self, entity_id: str, rule_key: str, key: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM timers WHERE entity_id=? AND rule_key=? AND key=?", (entity_id, rule_key, key))

    def cancel_timers(self, entity_id: str, rule_key: str) -> int:
        """Drop a rule's waiting timers for an entity; returns how many there were (0: nothing was pending)."""

        with self.transaction() as db:
            return db.execute("DELETE FROM timers WHERE entity_id=? AND rule_key=?", (entity_id, rule_key)).rowcount

    def timers_of(self, entity_id: str) -> list[WaitingTimer]:
        rows = self._conn().execute("SELECT rule_key, key, due_at FROM timers WHERE entity_id=? ORDER BY due_at",
                                    (entity_id,)).fetchall()
        return [cast(WaitingTimer, dict(r)) for r in rows]

    # ------------------------------------------------------------------ decisions and outbox

    def record(self, decisions: Sequence[Decision], items: Sequence[OutboxItem],
               created_at: Sequence[float] | None = None, replayed: Sequence[bool] | None = None) -> int:
        """Store decisions and queue their actions; returns how many outbox rows were new.

        `created_at` gives each item's time of decision when a caller writes a batch of them at once; `replayed`
        marks the items a replay decided, kept as `replayed` rows that no dispatcher claims."""

        now = time.time()
        created = created_at if created_at is not None else [now] * len(items)
        marks = replayed if replayed is not None else [False] * len(items)
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO decisions (id, rule, pack, rule_version, entity_id, entity_kind, trigger, at, "
                "outcome, reason, body) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(d.id, d.rule, d.pack, d.rule_version, d.entity_id, d.entity_kind, d.trigger, d.at, d.outcome,
                  d.reason, self.sealer.seal(d.model_dump_json())) for d in decisions],
            )
            cur = db.executemany(
                "INSERT OR IGNORE INTO outbox (key, decision_id, rule, entity_id, action_type, body, due_at, "
                "next_at, created_at, status) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(item.idempotency_key, item.decision_id, item.rule, item.entity_id, item.action.type,
                  self.sealer.seal(item.model_dump_json()), item.due_at, item.due_at, at,
                  "replayed" if mark else "pending")
                 for item, at, mark in zip(items, created, marks)],
            )
            return max(cur.rowcount, 0)  # executemany sums the rows each INSERT added

    def cancel_pending(self, entity_id: str, rule_key: str, after: float) -> int:
        """Cancel a rule's delayed actions due after `after`; returns how many were still pending."""

        with self.transaction() as db:
            cur = db.execute("UPDATE outbox SET status='cancelled', last_error='goal reached' WHERE entity_id=? AND "
                             "rule=? AND status IN ('pending','replayed') AND due_at > ?", (entity_id, rule_key, after))
            return cur.rowcount

    def waiting_of(self, entity_id: str) -> list[OutboxItem]:
        rows = self._conn().execute("SELECT body FROM outbox WHERE entity_id=? AND "
                                    "status IN ('pending','replayed') ORDER BY due_at, key", (entity_id,))
        return [OutboxItem.model_validate_json(self.sealer.open(r["body"])) for r in rows]

    def cancel_waiting(self, keys: Sequence[str], reason: str) -> int:
        with self.transaction() as db:
            cur = db.executemany("UPDATE outbox SET status='cancelled', last_error=? WHERE key=? "
                                 "AND status IN ('pending','replayed')", [(reason, key) for key in keys])
            return max(cur.rowcount, 0)

    def decisions_of(self, entity_id: str) -> list[Decision]:
        rows = self._conn().execute("SELECT body FROM decisions WHERE entity_id=? ORDER BY at, rowid", (entity_id,))
        return [Decision.model_validate_json(self.sealer.open(r["body"])) for r in rows]

    def all_decisions(self) -> list[Decision]:
        return [Decision.model_validate_json(self.sealer.open(r["body"])) for r in
                self._conn().execute("SELECT body FROM decisions ORDER BY at, rowid")]

    def claim_due(self, now: float, limit: int = 50, lease: float = 60.0,
                  owner: str | None = None) -> list[tuple[OutboxItem, int]]:
        """Take due actions for pushing, as `owner` (see `release_claims`); a claim expires after `lease` s."""

        with self.transaction() as db:
            rows = db.execute(
                "SELECT key, body, attempts FROM outbox WHERE status IN ('pending','sending') AND next_at <= ? "
                "ORDER BY next_at LIMIT ?", (now, limit)).fetchall()
            db.executemany("UPDATE outbox SET status='sending', next_at=?, claimed_by=? WHERE key=?",
                           [(now + lease, owner, r["key"]) for r in rows])
        return [(OutboxItem.model_validate_json(self.sealer.open(r["body"])), r["attempts"]) for r in rows]

    def claimants(self) -> list[str | None]:
        """Who holds the actions being pushed now (None: claimed by a version that did not say)."""

        return [r[0] for r in self._conn().execute("SELECT DISTINCT claimed_by FROM outbox WHERE status='sending'")]

    def release_claims(self, owner: str, now: float, reason: str) -> int:
        """Make the actions `owner` was pushing due again at `now` (its process is gone).

        Not counted as an attempt: rows claimed together cannot be told from the one in flight, and charging all
        of them would dead-letter actions that were never tried. The retry carries the same idempotency key.
        """

        with self.transaction() as db:
            return db.execute("UPDATE outbox SET status='pending', next_at=min(next_at, ?), claimed_by=NULL, "
                              "last_error=? WHERE status='sending' AND claimed_by=?", (now, reason, owner)).rowcount

    def mark_sent(self, key: str, result: str = "") -> None:
        with self.transaction() as db:
            db.execute("UPDATE outbox SET status='sent', sent_at=?, attempts=attempts+1, result=?, last_error=NULL, "
                       "claimed_by=NULL WHERE key=?", (time.time(), result, key))

    def mark_retry(self, key: str, next_at: float, error: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE outbox SET status='pending', attempts=attempts+1, next_at=?, last_error=?, claimed_by=NULL "
                       "WHERE key=?",
                       (next_at, error, key))

    def mark_dead(self, key: str, error: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE outbox SET status='dead', attempts=attempts+1, last_error=?, claimed_by=NULL WHERE key=?", (error, key))

    def mark_cancelled(self, key: str, reason: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE outbox SET status='cancelled', last_error=?, claimed_by=NULL WHERE key=?", (reason, key))

    def outbox_rows(self, status: OutboxStatus | None = None, limit: int = 1000) -> list[OutboxRow]:
        sql = ("SELECT key, rule, entity_id, action_type, status, attempts, due_at, next_at, last_error, sent_at, body "
               "FROM outbox" + (" WHERE status=?" if status else "") + " ORDER BY created_at, key LIMIT ?")
        args = (status, limit) if status else (limit,)
        return [cast(OutboxRow, dict(r, body=self.sealer.open(r["body"]))) for r in self._conn().execute(sql, args)]

    def outbox_counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT status, count(*) AS n FROM outbox GROUP BY status").fetchall()
        return {r["status"]: r["n"] for r in rows}

    def retry_dead(self, key: str | None = None) -> int:
        with self.transaction() as db:
            sql = "UPDATE outbox SET status='pending', next_at=?, attempts=0 WHERE status='dead'"
            cur = db.execute(sql + (" AND key=?" if key else ""), (time.time(), key) if key else (time.time(),))
            return cur.rowcount

    def drop(self, key: str) -> int:
        with self.transaction() as db:
            return db.execute("UPDATE outbox SET status='cancelled', last_error='dropped by operator' WHERE key=? "
                              "AND status IN ('pending','dead')", (key,)).rowcount

    # ------------------------------------------------------------------ retention

    def prune(self, retention: Retention, now: float | None = None, *, dry_run: bool = False, batch: int | None = None,
              max_batches: int | None = None, pause: float = 0.0,
              should_stop: Callable[[], bool] | None = None) -> Pruned:
        """Delete what `retention` no longer keeps, oldest first, `batch` rows per transaction.

        Why batches: a receiver's acknowledgement waits for the write lock, so no transaction here may hold it for
        long; `pause` seconds between batches lets the receivers in. `max_batches` bounds one call (the worker
        comes back for the rest, `more` says so). Never touched: pending and rejected events, pending, sending and
        dead actions, decisions of such actions, timers, entities, identities, merges, meta. Ages are wall-clock
        seconds (`now`, default time.time()) against: inbox `received_at` (redelivery is counted from receipt),
        decisions `at` (their decision time: event time in a replay), outbox `next_at` and `created_at` both.
        Freed pages go to SQLite's freelist and are reused by new rows, so the file stops growing; it does not
        shrink (run VACUUM offline for that).
        """

        now = time.time() if now is None else now
        size = batch or retention.batch
        result = Pruned()
        steps: list[tuple[str, float | None, str, str]] = [
            ("inbox_payloads", retention.events,
             "SELECT seq FROM inbox WHERE status='done' AND received_at < ? ORDER BY seq LIMIT ?",
             "UPDATE inbox SET status='pruned', payload='', error=NULL WHERE status='done' AND seq=?"),
            ("inbox_keys", retention.key_horizon,
             "SELECT seq FROM inbox WHERE status='pruned' AND received_at < ? ORDER BY seq LIMIT ?",
             "DELETE FROM inbox WHERE status='pruned' AND seq=?"),
            ("decisions", retention.decisions,
             "SELECT rowid FROM decisions WHERE at < ? AND id NOT IN (SELECT decision_id FROM outbox WHERE status "
             f"IN {_LIVE_OUTBOX}) ORDER BY at LIMIT ?",
             "DELETE FROM decisions WHERE rowid=?"),
        ]
        for status in ("sent", "cancelled", "replayed"):  # one status at a time, so each is a range of the (status, next_at) index
            steps.append(("outbox", retention.outbox,
                          f"SELECT key FROM outbox WHERE status='{status}' AND next_at < ?1 AND created_at < ?1 "
                          "ORDER BY next_at LIMIT ?2",
                          f"DELETE FROM outbox WHERE status='{status}' AND key=?"))
        if dry_run:
            return self._prune_counts(retention, now)
        batches = 0
        for kind, keep, select, change in steps:
            if keep is None:
                continue
            while True:
                # Chosen outside the write lock (WAL readers never wait); each change re-checks the status it
                # needs, so a row that moved on meanwhile is left alone. A decision cannot gain a live action
                # later: its actions are written with it, and a sent or cancelled action never becomes live again.
                ids = [r[0] for r in self._conn().execute(select, (now - keep, size))]
                if not ids:
                    break
                if (max_batches is not None and batches >= max_batches) or (should_stop and should_stop()):
                    result.more = True
                    return result
                if batches and pause:
                    time.sleep(pause)
                with self.transaction() as db:
                    done = db.executemany(change, [(i,) for i in ids]).rowcount
                batches += 1
                result.counts[kind] += max(done, 0)
                if len(ids) < size:
                    break
        return result

    def _prune_counts(self, retention: Retention, now: float) -> Pruned:
        """What `prune` would remove now, counted without writing (readers never wait for the write lock)."""

        db = self._conn()
        out = Pruned()

        def count(sql: str, *args: float) -> int:
            n: int = db.execute(sql, args).fetchone()[0]
            return n

        if retention.events is not None:
            out.counts["inbox_payloads"] = count(
                "SELECT count(*) FROM inbox WHERE status='done' AND received_at < ?", now - retention.events)
        if retention.key_horizon is not None:
            out.counts["inbox_keys"] = count(  # rows stripped earlier, and those this run strips and then deletes
                "SELECT count(*) FROM inbox WHERE status IN ('pruned','done') AND received_at < ?",
                now - retention.key_horizon)
        if retention.decisions is not None:
            out.counts["decisions"] = count(
                "SELECT count(*) FROM decisions WHERE at < ? AND id NOT IN (SELECT decision_id FROM outbox WHERE "
                f"status IN {_LIVE_OUTBOX})", now - retention.decisions)
        if retention.outbox is not None:
            out.counts["outbox"] = count(
                "SELECT count(*) FROM outbox WHERE status IN ('sent','cancelled','replayed') AND next_at < ?1 AND created_at < ?1",
                now - retention.outbox)
        return out

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        value: str | None = row["value"] if row else default
        return value

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?,?)", (key, value))


if TYPE_CHECKING:
    def _satisfies_the_contract(store: SQLiteStore) -> Store:
        return store  # mypy checks here that SQLiteStore has every method of every role, with their types
