"""On-site messages waiting for a visitor: the web tracker's own SQLite file.

The `web_tracker` target stores a rule's `message: {channel: onsite}` here, keyed by the lead's web ids
(anonymous_id, user_id). The snippet asks for them (`claim`), shows them and confirms (`mark_shown`). A shown message is
never handed out again: its row stays (with its text erased) so that a retried push of the same outbox item, or
— with `once_per_rule` — another firing of the same rule for the same person, is not shown a second time.

Ids are stored as SHA-256 hashes (keyed with $CRMRULES_WEB_TRACKER_HASH_KEY when set): the file needs only to
find a visitor's messages, not to know who they are. Emails are never stored here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from crmrules.config import secret

SCHEMA = """
CREATE TABLE IF NOT EXISTS onsite_messages (
  key TEXT PRIMARY KEY,               -- the outbox item's idempotency key: a retried push stores nothing new
  token TEXT NOT NULL UNIQUE,         -- the random id the browser sees
  entity_id TEXT NOT NULL, rule TEXT NOT NULL,
  subject TEXT NOT NULL, body TEXT NOT NULL, locale TEXT,
  created_at REAL NOT NULL, expires_at REAL NOT NULL,
  claimed_until REAL NOT NULL DEFAULT 0,
  shown_at REAL
);
CREATE TABLE IF NOT EXISTS onsite_ids (
  id_hash TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (id_hash, key)
);
CREATE INDEX IF NOT EXISTS onsite_ids_key ON onsite_ids (key);
"""

WEB_ID_KINDS = ("anonymous_id", "user_id")


@dataclass
class Message:
    id: str
    subject: str
    body: str
    locale: str | None
    rule: str


class OnsiteStore:
    def __init__(self, path: str):
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._target, self._uri = path, False
        else:  # one in-memory database shared by this process's threads
            self._target, self._uri = f"file:crmrules-web-tracker-{id(self)}?mode=memory&cache=shared", True
        self._local = threading.local()
        self._keep = self._conn()  # keeps a shared in-memory database alive
        self._keep.executescript(SCHEMA)
        key = secret("CRMRULES_WEB_TRACKER_HASH_KEY")
        self._hash_key = key.encode("utf-8") if key else None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._target, uri=self._uri, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            if not self._uri:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def hash_id(self, kind: str, value: str) -> str:
        blob = f"{kind}\x1f{value.strip()}".encode("utf-8")
        if self._hash_key:
            return hmac.new(self._hash_key, blob, hashlib.sha256).hexdigest()
        return hashlib.sha256(blob).hexdigest()

    def _hashes(self, ids: dict[str, str], kinds: tuple[str, ...] | list[str] = WEB_ID_KINDS) -> list[str]:
        return [self.hash_id(k, v) for k, v in sorted(ids.items()) if k in kinds and v and str(v).strip()]

    # ------------------------------------------------------------------ from the dispatcher

    def add(self, key: str, ids: dict[str, str], entity_id: str, rule: str, subject: str, body: str,
            locale: str | None, ttl: float, once_per_rule: bool, now: float | None = None) -> tuple[str, bool]:
        """Store a message for the person with these ids; returns (token, stored) — stored is False when this
        outbox item was stored before, or (once_per_rule) the person already has this rule's message."""

        now = time.time() if now is None else now
        hashes = self._hashes(ids)
        if not hashes:
            raise ValueError("the lead has no web id (anonymous_id or user_id) to show a message to")
        with self._tx() as db:
            row = db.execute("SELECT token FROM onsite_messages WHERE key=?", (key,)).fetchone()
            if row:
                return row["token"], False
            if once_per_rule:
                marks = ",".join("?" * len(hashes))
                row = db.execute(
                    f"SELECT m.token FROM onsite_messages m JOIN onsite_ids i ON i.key = m.key "
                    f"WHERE m.rule=? AND i.id_hash IN ({marks}) AND (m.shown_at IS NOT NULL OR m.expires_at > ?) "
                    f"LIMIT 1", (rule, *hashes, now)).fetchone()
                if row:
                    return row["token"], False
            token = secrets.token_urlsafe(18)
            db.execute("INSERT INTO onsite_messages (key, token, entity_id, rule, subject, body, locale, created_at, "
                       "expires_at) VALUES (?,?,?,?,?,?,?,?,?)",
                       (key, token, entity_id, rule, subject, body, locale, now, now + ttl))
            db.executemany("INSERT OR IGNORE INTO onsite_ids (id_hash, key) VALUES (?,?)", [(h, key) for h in hashes])
            # Expired, never-shown messages go; shown ones stay (text already erased) to keep "never again".
            db.execute("DELETE FROM onsite_ids WHERE key IN (SELECT key FROM onsite_messages "
                       "WHERE shown_at IS NULL AND expires_at <= ?)", (now,))
            db.execute("DELETE FROM onsite_messages WHERE shown_at IS NULL AND expires_at <= ?", (now,))
        return token, True

    # ------------------------------------------------------------------ from the browser

    def claim(self, ids: dict[str, str], kinds: list[str], lease: float, limit: int,
              now: float | None = None) -> list[Message]:
        """Messages for this visitor, not shown yet, not handed to another page in the last `lease` seconds."""

        now = time.time() if now is None else now
        hashes = self._hashes(ids, kinds)
        if not hashes:
            return []
        marks = ",".join("?" * len(hashes))
        with self._tx() as db:
            rows = db.execute(
                f"SELECT DISTINCT m.key, m.token, m.subject, m.body, m.locale, m.rule, m.created_at "
                f"FROM onsite_messages m JOIN onsite_ids i ON i.key = m.key WHERE i.id_hash IN ({marks}) "
                f"AND m.shown_at IS NULL AND m.expires_at > ? AND m.claimed_until <= ? "
                f"ORDER BY m.created_at, m.key LIMIT ?", (*hashes, now, now, limit)).fetchall()
            db.executemany("UPDATE onsite_messages SET claimed_until=? WHERE key=?",
                           [(now + lease, r["key"]) for r in rows])
        return [Message(r["token"], r["subject"], r["body"], r["locale"], r["rule"]) for r in rows]

    def mark_shown(self, ids: dict[str, str], kinds: list[str], tokens: list[str],
                   now: float | None = None) -> list[Message]:
        """Mark these messages shown, if they are this visitor's; returns those newly marked."""

        now = time.time() if now is None else now
        hashes = self._hashes(ids, kinds)
        tokens = [t for t in tokens if isinstance(t, str) and t][:50]
        if not hashes or not tokens:
            return []
        hmarks, tmarks = ",".join("?" * len(hashes)), ",".join("?" * len(tokens))
        with self._tx() as db:
            rows = db.execute(
                f"SELECT DISTINCT m.key, m.token, m.subject, m.body, m.locale, m.rule FROM onsite_messages m "
                f"JOIN onsite_ids i ON i.key = m.key WHERE i.id_hash IN ({hmarks}) AND m.token IN ({tmarks}) "
                f"AND m.shown_at IS NULL", (*hashes, *tokens)).fetchall()
            db.executemany("UPDATE onsite_messages SET shown_at=?, subject='', body='' WHERE key=?",
                           [(now, r["key"]) for r in rows])
        return [Message(r["token"], r["subject"], r["body"], r["locale"], r["rule"]) for r in rows]

    # ------------------------------------------------------------------ for people and tests

    def rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn().execute("SELECT * FROM onsite_messages ORDER BY created_at, key")]


_stores: dict[str, OnsiteStore] = {}
_stores_lock = threading.Lock()


def open_onsite(path: str) -> OnsiteStore:
    """One `OnsiteStore` per file in this process (the views and the dispatcher share it)."""

    key = path if path == ":memory:" else str(Path(path).resolve())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = OnsiteStore(path)
        return store
