"""Request limits: a token bucket per write key, and body size caps that also hold for gzip bodies."""

from __future__ import annotations

import math
import threading
import time
import zlib
from typing import Callable


class TooLarge(Exception):
    """The body is over a size cap: answered 413 with the reason."""


class RateLimiter:
    """One token bucket per write key, in this process: `rate` tokens a second up to `burst`.

    A request costs one token per event it carries and is taken whole or refused whole; `take` answers how many
    seconds to wait before the same request would fit (0 when it was taken). Several receiver processes each keep
    their own buckets, so the effective limit is per process.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000):
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def take(self, key: str, cost: float, rate: float, burst: float) -> float:
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - at) * rate)
            if cost <= tokens:
                self._remember(key, (tokens - cost, now))
                return 0.0
            self._remember(key, (tokens, now))
            if cost > burst:
                return math.inf  # never fits: the caller says so instead of asking to retry
            return (cost - tokens) / rate

    def _remember(self, key: str, value: tuple[float, float]) -> None:
        if key not in self._buckets and len(self._buckets) >= self._max_keys:
            self._buckets.clear()  # only configured keys get here; a bound, not a policy
        self._buckets[key] = value


def gunzip(data: bytes, cap: int) -> bytes:
    """Decompress a gzip body, refusing to produce more than `cap` bytes (a 1 KB zip bomb stays 1 KB of work)."""

    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, cap + 1)
        if len(out) > cap or inflater.unconsumed_tail:
            raise TooLarge(f"the gzip body decompresses to more than {cap} bytes")
        out += inflater.flush()
    except zlib.error as exc:
        raise ValueError(f"the body is not valid gzip: {exc}") from None
    if len(out) > cap:
        raise TooLarge(f"the gzip body decompresses to more than {cap} bytes")
    if not inflater.eof:
        raise ValueError("the gzip body is truncated")
    return out
