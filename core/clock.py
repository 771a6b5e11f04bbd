"""The time the data path runs on: the wall clock when live, a clock set by hand in replays and tests.

Why its own module: the pipeline (timers), the dispatcher (due actions, backoff) and the sidecar's worker all
read the same clock, and none of them should have to import another stage to get it.
"""

from __future__ import annotations

import time


class Clock:
    """Wall-clock time; tests and replays use `ManualClock`."""

    def now(self) -> float:
        return time.time()


class ManualClock(Clock):
    """Time that moves only when set: event time during a replay, a fixed instant in a test."""

    def __init__(self, start: float = 0.0):
        self.t = start

    def now(self) -> float:
        return self.t

    def set(self, t: float) -> None:
        self.t = t
