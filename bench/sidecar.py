"""The sidecar under load, over real HTTP: how fast webhooks are acknowledged, and how long an event takes
to become a pushed action.

    python bench/sidecar.py                       # 2,000 webhook posts from 8 client threads
    python bench/sidecar.py --posts 5000 --clients 16

Starts `crmrules serve` as a subprocess with the test plugin (tests/support/testhook_plugin.py) and a local
push target, posts one signup event per request, then prints acknowledgement latency (p50/p95/p99), requests
per second, and event→push latency (from the post to the target receiving the task).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.sidecar import start_sidecar  # noqa: E402
from tests.support.target import start_target  # noqa: E402
from tests.support.testhook import ENV, KEY, config, signup  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    target = start_target()
    with tempfile.TemporaryDirectory() as folder:
        cfg = config(target)
        cfg["max_body_bytes"] = 1_000_000
        sidecar = start_sidecar(Path(folder), cfg, env=ENV)
        sent_at: dict[str, float] = {}

        def post(n: int) -> float:
            email = f"bench{n}@example.com"
            started = time.perf_counter()
            sent_at[email] = time.time()
            status, _, _ = sidecar.post("/hooks/test", signup(email), KEY)
            assert status == 200, status
            return time.perf_counter() - started

        began = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            acks = list(pool.map(post, range(args.posts)))
        elapsed = time.perf_counter() - began
        deadline = time.monotonic() + 300
        while len(target.successes()) < args.posts and time.monotonic() < deadline:
            time.sleep(0.1)
        drained = time.perf_counter() - began
        pushes = {r.body["identities"]["email"]: r.at for r in target.successes()}
        e2e = [pushes[e] - sent_at[e] for e in sent_at if e in pushes]
        sidecar.stop()
        target.server.stop()
    ms = 1000
    print(f"acknowledged {args.posts} posts from {args.clients} clients in {elapsed:.2f} s "
          f"({args.posts / elapsed:,.0f}/s)")
    print(f"  ack latency ms: p50 {pct(acks, 50) * ms:.1f}  p95 {pct(acks, 95) * ms:.1f}  "
          f"p99 {pct(acks, 99) * ms:.1f}  max {max(acks) * ms:.1f}")
    print(f"pushed {len(pushes)} tasks; all evaluated and pushed {drained:.2f} s after the first post")
    if e2e:
        print(f"  event→push ms: p50 {pct(e2e, 50) * ms:.0f}  p95 {pct(e2e, 95) * ms:.0f}  "
              f"max {max(e2e) * ms:.0f}  (mean {statistics.mean(e2e) * ms:.0f})")


if __name__ == "__main__":
    main()
