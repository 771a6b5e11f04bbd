"""Engine path throughput: validate → inbox → evaluate → outbox, next to a raw durable-rules loop.

Both run in this process on the same generated events, several rounds each, and we print medians and the
ratio (machines here are noisy; a ratio measured in one run is what compares). Usage:

    python bench/engine.py                      # 10 and 100 rules, 1k leads, 20k events
    python bench/engine.py --leads 100000 --events 200000 --rules 10

The raw loop is what durable-rules alone does: one `post` per event to a ruleset of the same number of
single-event rules, with nothing stored. It keeps at most 1,000 sessions (its limit is 1,024 per ruleset),
so lead ids are folded onto 1,000 sids there; the crmrules path keeps every lead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
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


def run_crmrules(pack_text: str, raw_events: list[dict], batch: int) -> float:
    pack = parse_pack_text(pack_text, "bench.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.sqlite")
        pipeline = Pipeline(store, [pack])
        started = time.perf_counter()
        for i in range(0, len(raw_events), batch):
            events = [Event.model_validate(e) for e in raw_events[i:i + batch]]  # validate
            pipeline.ingest(events)  # inbox
            pipeline.process_pending(batch=batch)  # evaluate → decisions → outbox
        elapsed = time.perf_counter() - started
        store.close()
    return len(raw_events) / elapsed


class _QuietHost(durable.Host):
    def _run(self) -> None:
        return None


def run_raw(n_rules: int, raw_events: list[dict], tag: str) -> float:
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
    started = time.perf_counter()
    for message in messages:
        try:
            host.post(name, message)
        except durable.MessageNotHandledException:
            pass
    return len(messages) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--leads", type=int, nargs="+", default=[1000])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, durable-rules 2.0.28, {args.events} events, {args.rounds} rounds, median")
    print(f"{'rules':>6} {'leads':>8} {'crmrules ev/s':>14} {'raw durable ev/s':>17} {'ratio':>7}")
    for n_rules in args.rules:
        for n_leads in args.leads:
            events = make_events(args.events, n_leads)
            pack = make_pack(n_rules)
            ours, raw = [], []
            for r in range(args.rounds):
                raw.append(run_raw(n_rules, events, f"{n_rules}_{n_leads}_{r}"))
                ours.append(run_crmrules(pack, events, args.batch))
            a, b = statistics.median(ours), statistics.median(raw)
            print(f"{n_rules:>6} {n_leads:>8} {a:>14,.0f} {b:>17,.0f} {a / b:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
