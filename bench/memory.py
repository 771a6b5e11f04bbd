"""Resident memory while streaming events over many leads: does it stay flat as old windows expire?

    python bench/memory.py                        # 1,000,000 events over 100,000 leads
    python bench/memory.py --events 200000 --leads 20000

Prints RSS (from /proc/self/status) every tenth of the run, the store's size, and the mean size of one lead's
saved state, so growth per lead and growth per event can be told apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import make_events, make_pack  # noqa: E402

from crmrules import Pipeline, SQLiteStore  # noqa: E402
from crmrules.language.parser import parse_pack_text  # noqa: E402
from crmrules.models import Event  # noqa: E402


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
        print(f"{'events':>10} {'RSS MB':>8} {'store MB':>9} {'ev/s':>8}")
        step = max(args.events // 10, args.batch)
        started = time.perf_counter()
        done = 0
        chunk = 20_000
        for offset in range(0, args.events, chunk):
            # event time moves on across chunks, so old windows expire as they would in production
            raw = make_events(min(chunk, args.events - offset), args.leads, seed=offset, first=offset)
            for i in range(0, len(raw), args.batch):
                events = [Event.model_validate(e) for e in raw[i:i + args.batch]]
                pipeline.ingest(events)
                pipeline.process_pending(batch=args.batch)
                done += len(events)
                if done % step < args.batch:
                    size = sum(f.stat().st_size for f in Path(tmp).glob("memory.sqlite*")) / 1e6
                    print(f"{done:>10,} {rss_mb():>8.0f} {size:>9.0f} {done / (time.perf_counter() - started):>8,.0f}",
                          flush=True)
        states = store.entities("lead")
        mean = sum(len(str(s)) for _, _, s in states) / max(len(states), 1)
        print(f"leads stored: {len(states):,}; mean saved state {mean:,.0f} bytes")
        store.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
