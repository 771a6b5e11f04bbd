"""Engine path throughput: validate → inbox → evaluate → outbox, next to a raw durable-rules loop.

Both run in this process on the same generated events, several rounds each, and we print medians and the
ratio (machines here are noisy; a ratio measured in one run is what compares). "CPU ratio" is the same ratio
in events per CPU-second of this process (median of the rounds): on a machine shared with other work it moves
less than the wall-clock one, but it leaves out time spent waiting for the disk. Usage:

    python bench/engine.py                      # 10 and 100 rules × 1k and 100k leads, 20k events
    python bench/engine.py --leads 100000 --events 200000 --rules 10
    python bench/engine.py --rules 10 --profile # one extra round under cProfile, top functions printed

Before the timed part the store is warmed with one event per lead (event time before the measured events),
so with 100k leads the store holds 100k states and most of them are not in the evaluator's 20k-state cache:
the measured events load states from SQLite, as a sidecar with many leads does. The warm store is built once
per configuration and copied for every round.

The raw loop is what durable-rules alone does: one `post` per event to a ruleset of the same number of
single-event rules, with nothing stored. It keeps at most 1,000 sessions (its limit is 1,024 per ruleset),
so lead ids are folded onto 1,000 sids there; the crmrules path keeps every lead.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import datetime as dt
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import durable.engine as durable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crmrules import Pipeline, SQLiteStore  # noqa: E402
from crmrules.language.parser import parse_pack_text  # noqa: E402
from crmrules.models import Event  # noqa: E402

TYPES = ["page_view", "email_open", "ebook_download", "form_submit", "blog_read"]
PATHS = ["/pricing", "/blog/a", "/product", "/demo", "/"]
START = dt.datetime(2026, 1, 5, 9, tzinfo=dt.timezone.utc)


def make_pack(n_rules: int) -> str:
    """A realistic mix: single events, filtered events, windowed counts and property tests."""

    lines = ["pack: bench", "rules:"]
    for i in range(n_rules):
        etype, path = TYPES[i % len(TYPES)], PATHS[(i // len(TYPES)) % len(PATHS)]
        kind = i % 4
        if kind == 0:
            when = f"{{event: {etype}}}"
        elif kind == 1:
            when = f"{{event: {{type: page_view, where: {{path: '{path}'}}}}}}"
        elif kind == 2:
            when = f"{{count: {{event: {etype}, within: 7d, at_least: {2 + i % 3}}}}}"
        else:
            when = f"{{all: [{{event: {etype}}}, {{lead: {{industry: manufacturing}}}}]}}"
        lines.append(f"  - id: r{i}\n    when: {when}\n    then: [{{tag: t{i}}}]\n    limit: every time")
    return "\n".join(lines) + "\n"


def make_events(n_events: int, n_leads: int, seed: int = 7, first: int = 0) -> list[dict]:
    """Events 30 s apart in event time, numbered from `first` (so chunks of a long run follow each other)."""

    rng = random.Random(seed)
    out = []
    for i in range(first, first + n_events):
        lead = rng.randrange(n_leads)
        etype = rng.choice(TYPES)
        props = {"path": rng.choice(PATHS)} if etype == "page_view" else {}
        out.append({"id": f"e{i}", "source": "bench", "type": etype,
                    "occurred_at": (START + dt.timedelta(seconds=i * 30)).isoformat(),
                    "subject": {"kind": "lead", "ids": {"email": f"lead{lead}@example.com"}}, "properties": props})
    return out


def warm_events(n_leads: int) -> list[dict]:
    """One event per lead, a day before the measured events, so that every lead has a stored state."""

    out = []
    for lead in range(n_leads):
        etype = TYPES[lead % len(TYPES)]
        out.append({"id": f"w{lead}", "source": "bench", "type": etype,
                    "occurred_at": (START - dt.timedelta(days=1) + dt.timedelta(seconds=lead * 0.5)).isoformat(),
                    "subject": {"kind": "lead", "ids": {"email": f"lead{lead}@example.com"}},
                    "properties": {"path": PATHS[lead % len(PATHS)]} if etype == "page_view" else {}})
    return out


def feed(pipeline: Pipeline, raw_events: list[dict], batch: int) -> None:
    for i in range(0, len(raw_events), batch):
        events = [Event.model_validate(e) for e in raw_events[i:i + batch]]  # validate
        pipeline.ingest(events)  # inbox
        pipeline.process_pending(batch=batch)  # evaluate → decisions → outbox


def warm_store(pack_text: str, n_leads: int, folder: Path, batch: int) -> Path:
    path = folder / f"warm-{n_leads}.sqlite"
    store = SQLiteStore(path)
    feed(Pipeline(store, [parse_pack_text(pack_text, "bench.yaml")]), warm_events(n_leads), batch)
    store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return path


def run_crmrules(pack_text: str, raw_events: list[dict], batch: int, warm: Path | None = None) -> tuple[float, float]:
    """(events per wall-clock second, events per CPU second of this process)."""

    pack = parse_pack_text(pack_text, "bench.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        if warm is not None:
            shutil.copyfile(warm, path)
        store = SQLiteStore(path)
        pipeline = Pipeline(store, [pack])
        started, cpu = time.perf_counter(), time.process_time()
        feed(pipeline, raw_events, batch)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        store.close()
    return len(raw_events) / elapsed, len(raw_events) / cpu


class _QuietHost(durable.Host):
    def _run(self) -> None:
        return None


def run_raw(n_rules: int, raw_events: list[dict], tag: str) -> tuple[float, float]:
    """The raw loop in a forked child: durable-rules keeps memory for every posted event that matched more than
    one rule (about 40 kB an event at 100 rules here, not freed by deleting the ruleset), which would otherwise
    pile up in this process round after round."""

    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=lambda: child.send(_run_raw(n_rules, raw_events, tag)))
    process.start()
    result = parent.recv()
    process.join()
    return result


def _run_raw(n_rules: int, raw_events: list[dict], tag: str) -> tuple[float, float]:
    host = _QuietHost()
    fired = []
    rules = {}
    for i in range(n_rules):
        etype = TYPES[i % len(TYPES)]
        rules[f"r{i}"] = {"all": [{"m": {"type": etype}}], "run": lambda c: fired.append(1)}
    name = f"raw_{tag}"
    host.set_rulesets({name: rules})
    messages = [{"id": e["id"], "sid": str(hash(e["subject"]["ids"]["email"]) % 1000), "type": e["type"],
                 **e["properties"]} for e in raw_events]
    started, cpu = time.perf_counter(), time.process_time()
    for message in messages:
        try:
            host.post(name, message)
        except durable.MessageNotHandledException:
            pass
    return len(messages) / (time.perf_counter() - started), len(messages) / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--leads", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="profile one more crmrules round (cProfile)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, durable-rules 2.0.28, {args.events} events, {args.rounds} rounds, median")
    print(f"{'rules':>6} {'leads':>8} {'crmrules ev/s':>14} {'raw durable ev/s':>17} {'ratio':>7} {'CPU ratio':>10}")
    for n_rules in args.rules:
        for n_leads in args.leads:
            events = make_events(args.events, n_leads)
            pack = make_pack(n_rules)
            ours, raw = [], []
            with tempfile.TemporaryDirectory() as folder:
                warm = warm_store(pack, n_leads, Path(folder), args.batch)
                for r in range(args.rounds):
                    raw.append(run_raw(n_rules, events, f"{n_rules}_{n_leads}_{r}"))
                    ours.append(run_crmrules(pack, events, args.batch, warm))
                a, b = statistics.median(o[0] for o in ours), statistics.median(w[0] for w in raw)
                ratios = sorted(o[0] / w[0] for o, w in zip(ours, raw))
                cpu = statistics.median(o[1] / w[1] for o, w in zip(ours, raw))
                print(f"{n_rules:>6} {n_leads:>8} {a:>14,.0f} {b:>17,.0f} {a / b:>7.2f} {cpu:>10.2f}"
                      f"   (per-round ratios {' '.join(f'{x:.2f}' for x in ratios)})", flush=True)
                if args.profile:
                    profiler = cProfile.Profile()
                    profiler.runcall(run_crmrules, pack, events, args.batch, warm)
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
