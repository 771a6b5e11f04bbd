"""The outbox dispatcher: claims due actions and has the plugins push them, with retries and dead letters.

Why it looks like this:
- Routing is the deployment's (`targets:` in crmrules.yaml), not the rule's, so one pack runs against HubSpot in
  one company and Salesforce in another.
- A target that says "later" (RetryLater, 429/5xx) is retried after what it asked for or an exponential backoff
  with full jitter, whichever is longer; jitter keeps a burst of failures from retrying in lockstep.
- A fault retrying cannot fix (PushFailed), an action routed to no registered target, or a target plugin whose
  options are bad, goes to the dead letters at once with a reason an admin can act on (`crmrules outbox list
  --status dead`, then `retry` or `drop`).
- Anything unexpected is treated as passing: a bug in a plugin should not lose actions, and max_attempts
  bounds the cost.
- Targets are looked up by name in the plugin registry and called with their plugin's context (options,
  folder, metrics, clock, logger), built once per dispatcher, not per push.
- Consent is looked at once more just before a message goes (`send_check`, the pipeline's: it owns the lead's
  state): an action the lead's opt-out now forbids is cancelled with the reason, never pushed.
- Plugins receive the idempotency key, so a push retried after a crash (claimed, pushed, not yet marked) is
  applied once.
- A claim names its process (host:pid:token). An action left `sending` by a process on this host that is gone
  (kill -9, OOM), or by a pass of our own that failed half-way (the store refused to record an outcome), is due
  again on the next pass, not only when its lease runs out, and is retried with the same key. Claims of other
  hosts, or of another live process, wait for the lease.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..api import Contexts, PushFailed, RetryLater
from ..clock import Clock
from ..models import OutboxItem
from ..registry import Registry

if TYPE_CHECKING:
    from ..store import OutboxStore

log = logging.getLogger("crmrules.outbox")

BASE_DELAY = 1.0
MAX_DELAY = 15 * 60.0

SendCheck = Callable[[OutboxItem], "str | None"]
"""Why a claimed action may no longer go (e.g. the lead opted out since it was decided), or None."""


def backoff(failures: int, rng: random.Random | None = None, base: float = BASE_DELAY,
            cap: float = MAX_DELAY) -> float:
    """Seconds to wait after the `failures`-th failed try: uniform in [0, min(cap, base·2^(failures-1))]."""

    ceiling = min(cap, base * 2 ** min(max(failures - 1, 0), 40))
    return (rng or random).uniform(0.0, ceiling)


@dataclass
class PushOutcome:
    """What became of one claimed action (also what the tests and metrics look at)."""

    key: str
    target: str | None
    status: str  # sent | retry | dead | cancelled
    detail: str
    seconds: float = 0.0
    next_at: float | None = None


class Dispatcher:
    def __init__(self, store: OutboxStore, settings: Any, plugins: Registry | None = None, clock: Any = None, *,
                 metrics: Any = None, contexts: Contexts | None = None, rng: random.Random | None = None,
                 batch: int = 50, lease: float = 60.0, send_check: SendCheck | None = None):
        from ..plugins import PluginContexts, get_registry

        self.store = store
        self.settings = settings
        self.plugins = plugins or get_registry()
        self.clock = clock or Clock()
        self.metrics = metrics
        self.contexts = contexts or PluginContexts(self.plugins, settings, clock=self.clock,
                                                   metrics=metrics.registry if metrics is not None else None)
        self.rng = rng or random.Random()
        self.batch = batch
        self.lease = lease
        self.send_check = send_check
        self.last: list[PushOutcome] = []
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"

    # -------------------------------------------------------------- one pass

    def run_once(self, now: float | None = None) -> int:
        """Push every action due at `now` (at most `batch` of them); returns how many were handled."""

        now = self.clock.now() if now is None else now
        self.recover(now)
        claimed = self.store.claim_due(now, limit=self.batch, lease=self.lease, owner=self.owner)
        self.last = [self.push(item, attempts, now) for item, attempts in claimed]
        return len(claimed)

    def recover(self, now: float) -> int:
        """Make due again the actions left `sending` by a dead process on this host, or by an earlier pass of
        this dispatcher that failed half-way (the store refused to record an outcome); returns how many.

        A pass runs on one thread and starts with no push in flight, so any claim of our own is such a leftover.
        """

        released = 0
        for claimant in self.store.claimants():
            if claimant is None:
                continue
            if claimant == self.owner:
                reason = ("the outcome of the last try could not be recorded (the store refused the write); "
                          "retried with the same idempotency key")
            elif _gone(claimant, self.owner):
                reason = (f"the process pushing it ({claimant}) died before it heard the answer; "
                          "retried with the same idempotency key")
            else:
                continue
            n = self.store.release_claims(claimant, now, reason)
            if n:
                log.warning("%d action(s) claimed by %s are due again: %s", n, claimant, reason)
            released += n
        return released

    def run(self, stop: threading.Event, idle: float = 1.0) -> None:
        """Dispatch until `stop` is set, for a process that only pushes (the worker calls `run_once` itself)."""

        while not stop.is_set():
            try:
                handled = self.run_once()
            except Exception:
                log.exception("dispatcher pass failed; trying again")
                handled = 0
            if not handled:
                stop.wait(idle)

    def push(self, item: OutboxItem, attempts: int, now: float) -> PushOutcome:
        """Push one claimed action and record its fate in the store."""

        kind, channel = _kind(item)
        target = self.settings.target_for(kind, channel)
        if item.shadow:  # the core never queues shadow actions; should one slip through, it must not act
            return self._sent(item, target, "shadow: not pushed", 0.0)
        withheld = self.send_check(item) if self.send_check is not None else None
        if withheld:
            return self._cancelled(item, target, withheld)
        if target is None:
            return self._dead(item, None, _unrouted(kind, channel, None), attempts, 0.0)
        found = self.plugins.targets.get(target)
        if found is None:
            return self._dead(item, target, _unrouted(kind, channel, target), attempts, 0.0)
        try:
            context = self.contexts.get(found.plugin)
        except ValueError as exc:  # the plugin's options are bad: no retry fixes that, the admin does
            return self._dead(item, target, str(exc), attempts, 0.0)
        started = time.perf_counter()
        try:
            result = found.push(item, context)
        except RetryLater as exc:
            return self._retry(item, target, exc.reason, exc.retry_after, attempts, now, started)
        except PushFailed as exc:  # ActionNotSupported included
            return self._dead(item, target, str(exc) or type(exc).__name__, attempts, time.perf_counter() - started)
        except Exception as exc:
            log.warning("push of %s to %s raised", item.idempotency_key[:12], target, exc_info=True)
            return self._retry(item, target, f"{type(exc).__name__}: {exc}", None, attempts, now, started)
        seconds = time.perf_counter() - started
        if not isinstance(result, str):
            return self._dead(item, target, f"the {target} plugin's push returned {result!r}, not a result text",
                              attempts, seconds)
        return self._sent(item, target, str(result), seconds)

    # -------------------------------------------------------------- outcomes

    def _sent(self, item: OutboxItem, target: str | None, result: str, seconds: float) -> PushOutcome:
        self.store.mark_sent(item.idempotency_key, result)
        log.info("pushed %s (%s) to %s in %.0f ms: %s", item.idempotency_key[:12], item.rule, target,
                 seconds * 1000, result)
        return self._count(PushOutcome(item.idempotency_key, target, "sent", result, seconds))

    def _retry(self, item: OutboxItem, target: str, reason: str, retry_after: float | None, attempts: int,
               now: float, started: float) -> PushOutcome:
        seconds = time.perf_counter() - started
        tries = attempts + 1
        max_attempts = int(self.settings.max_attempts)
        if tries >= max_attempts:
            return self._dead(item, target, f"gave up after {tries} attempts: {reason}", attempts, seconds)
        # Counted from when the target answered, so a slow "retry in 1 s" still gets its full second (`now` was
        # read before the push, and a manual clock does not move during it).
        answered = max(now + seconds, self.clock.now())
        wait = max(float(retry_after or 0.0), backoff(tries, self.rng))
        self.store.mark_retry(item.idempotency_key, answered + wait, reason)
        log.warning("push of %s (%s) to %s failed (try %d of %d), again in %.1f s: %s", item.idempotency_key[:12],
                    item.rule, target, tries, max_attempts, wait, reason)
        return self._count(PushOutcome(item.idempotency_key, target, "retry", reason, seconds, answered + wait))

    def _dead(self, item: OutboxItem, target: str | None, reason: str, attempts: int,
              seconds: float) -> PushOutcome:
        self.store.mark_dead(item.idempotency_key, reason)
        log.error("dead letter %s (%s) after %d attempt(s): %s", item.idempotency_key[:12], item.rule,
                  attempts + 1, reason)
        return self._count(PushOutcome(item.idempotency_key, target, "dead", reason, seconds))

    def _cancelled(self, item: OutboxItem, target: str | None, reason: str) -> PushOutcome:
        self.store.mark_cancelled(item.idempotency_key, reason)
        log.info("withheld %s (%s) at send time: %s", item.idempotency_key[:12], item.rule, reason)
        return self._count(PushOutcome(item.idempotency_key, target, "cancelled", reason))

    def _count(self, outcome: PushOutcome) -> PushOutcome:
        if self.metrics is not None:
            pushed = outcome.target is not None and outcome.seconds > 0
            self.metrics.count_push(outcome.target or "none", outcome.status, outcome.seconds if pushed else None)
        return outcome


def _gone(claimant: str, me: str) -> bool:
    """Whether the process that made a claim is surely gone: same host, and its pid is ours under another token
    (a restart that got the same pid, as in a container) or no longer a running process."""

    my_host, my_pid, my_token = me.rsplit(":", 2)
    try:
        their_host, their_pid, their_token = claimant.rsplit(":", 2)
        pid = int(their_pid)
    except ValueError:
        return False
    if their_host != my_host:
        return False  # another machine: only its lease can tell
    if str(pid) == my_pid:
        return their_token != my_token  # our pid under another token: an earlier process of the same pid
    return not _running(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    try:  # a killed child not yet reaped by its parent is a zombie: gone for our purpose
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _kind(item: OutboxItem) -> tuple[str, str | None]:
    """The name `targets:` routes by: the action type, a plugin action's own name, and a message's channel."""

    action = item.action
    if action.type == "custom":
        return action.name, None
    return action.type, getattr(action, "channel", None)


def _unrouted(kind: str, channel: str | None, target: str | None) -> str:
    where = f"set targets.{kind}" + (f" (or targets.{kind}.{channel})" if channel else "")
    return f"no plugin pushes {kind} to {target or 'any target'}; {where} in crmrules.yaml"
