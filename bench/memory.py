"""Resident memory while streaming events over many leads: does it stay flat as old windows expire?

    python bench/memory.py                        # 1,000,000 events over 100,000 leads (--events, --leads)
    python bench/memory.py --events 200000 --leads 20000

Events are 30 s apart in event time (1M events span almost a year), so the rules' 7-day windows expire over and
over. Prints RSS (from /proc/self/status) every tenth of the run, the store's size on disk, and the mean size of
a saved lead state (a sample of the states in the evaluator's cache), so growth per lead and growth per event
can be told apart; at the end, how much RSS grew over the second half (flat means: bounded by the caches, not by
the events seen). The store itself grows with every event (inbox, decisions and outbox rows are kept): that is
disk, not memory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import feed, make_events, make_pack  # noqa: E402

from crmrules import Pipeline, SQLiteStore  # noqa: E402
from crmrules.language.parser import parse_pack_text  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    pack = parse_pack_text(make_pack(args.rules), "bench.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "memory.sqlite"
        store = SQLiteStore(path)
        pipeline = Pipeline(store, [pack])
        print(f"{args.events:,} events over {args.leads:,} leads, {args.rules} rules; RSS at start {rss_mb():.0f} MB")
        print(f"{'events':>10} {'RSS MB':>8} {'store MB':>9} {'ev/s':>8} {'state B':>8}")
        step = max(args.events // 10, args.batch)
        started = time.perf_counter()
        done = 0
        seen: list[tuple[int, float]] = []
        for offset in range(0, args.events, step):
            # event time moves on across chunks, so old windows expire as they would in production
            for first in range(offset, min(offset + step, args.events), 20_000):
                count = min(20_000, offset + step - first, args.events - first)
                feed(pipeline, make_events(count, args.leads, seed=first, first=first), args.batch)
                done += count
            size = sum(f.stat().st_size for f in Path(tmp).glob("memory.sqlite*")) / 1e6
            sample = list(pipeline._cache.values())[-1000:]
            state = sum(len(json.dumps(s.to_json())) for s in sample) / max(len(sample), 1)
            rss = rss_mb()
            seen.append((done, rss))
            print(f"{done:>10,} {rss:>8.0f} {size:>9.0f} {done / (time.perf_counter() - started):>8,.0f} "
                  f"{state:>8,.0f}", flush=True)
        half = min(seen, key=lambda x: abs(x[0] - done / 2))
        print(f"RSS {half[1]:.0f} MB after {half[0]:,} events, {seen[-1][1]:.0f} MB after {done:,}: "
              f"{seen[-1][1] - half[1]:+.0f} MB over the second half")
        leads = store._conn().execute("SELECT count(*) FROM entities WHERE kind='lead'").fetchone()[0]
        print(f"leads stored: {leads:,}")
        store.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
