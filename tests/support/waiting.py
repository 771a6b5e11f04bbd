"""Polling for what another process or thread will do: tests wait on a condition, never on a fixed sleep."""

from __future__ import annotations

import time
from typing import Any, Callable


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition", every: float = 0.05) -> Any:
    """`check()`'s first truthy value; AssertionError naming `what` if none came within `timeout` seconds."""

    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
