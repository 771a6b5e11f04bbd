"""The sidecar over real HTTP: signed HubSpot webhooks in, durably accepted, evaluated and pushed.

    python bench/receiver.py                                  # 30 s of wrk, 4 connections, 100 events a request
    python bench/receiver.py --connections 16 --duration 20
    python bench/receiver.py --events-per-request 1           # one event per request (what bench/sidecar.py did)
    python bench/receiver.py --paced 20                       # 20 requests/s from one connection, each one timed

What runs, all on loopback:
- `crmrules serve` (waitress, 8 threads, the production server the README recommends) as a subprocess, with the
  HubSpot plugin receiving signed v3 webhooks (`crmrules_hubspot.signature.sign`, checked as in production) and
  a bench pack: every request carries one `ebook_download` that makes one task (pushed through the test plugin to
  a local sink, tests/support/target.py) and page views that rules count but that push nothing;
- the load: `wrk` (Debian's package; `apt-get install wrk`) with bench/receiver.lua cycling pre-signed bodies
  over a fixed number of keep-alive connections, each body sent once. The bodies are signed just before the run
  with the current timestamp, so a run must end inside HubSpot's 5-minute window (`--duration` is capped);
- request → push latency: wrk cannot tell us when it sent a given body, so a Python probe (one connection,
  one request every `--probe-every` s, during the wrk load) sends its own signed requests and the sink's arrival
  time of each probe's task is compared with the probe's send time. wrk's closed loop accepts events faster than
  one evaluator thread can evaluate them, so under it this latency is mostly the inbox backlog; `--paced` sends
  at a fixed rate the sidecar keeps up with instead (Python, one connection: a paced load is what we need there,
  not the most requests);
- the baseline, measured in the same run against the same bodies: `--baseline` (default on) serves a bare
  waitress + Flask endpoint (same 8 threads) that verifies the same signature and inserts the body into SQLite in
  WAL mode — the floor of "verify and store durably" in Python, without identity, events or rules.

Printed: requests/s and events/s acknowledged with 200 (an answer means the events are in the inbox), wrk's
acknowledgement latency p50/p99, request → push p50/p99, and how long the sidecar took to evaluate and push
everything after the load stopped.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crmrules_hubspot.signature import sign  # noqa: E402

from tests.support.sidecar import free_port, start_sidecar  # noqa: E402
from tests.support.target import start_target  # noqa: E402

SECRET = "bench-client-secret"
PUBLIC_URL = "https://crm-hooks.example.com/hooks/hubspot"
PORTAL = 62515
NAMES = {f"pe{PORTAL}_page_viewed": "page_view", f"pe{PORTAL}_ebook_downloaded": "ebook_download"}
LUA = Path(__file__).resolve().parent / "receiver.lua"
PACK = """\
pack: receiver-bench
rules:
  - id: ebook-call
    when: {event: ebook_download}
    then: [{task: {title: "Call about the eBook"}}]
    limit: every time
  - id: pricing-twice
    when: {count: {event: page_view, where: {path: /pricing}, within: 7d, at_least: 1000000}}
    then: [{task: {title: never}}]
  - id: many-views
    when: {count: {event: page_view, within: 1d, at_least: 1000000}}
    then: [{task: {title: never}}]
"""


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


def notification(n: int, contact: int, name: str, at_ms: int, path: str | None = None,
                 subscription: int = 7000) -> dict:
    item = {"eventId": n, "subscriptionId": subscription, "portalId": PORTAL, "appId": 1, "occurredAt": at_ms,
            "subscriptionType": "contact.behavioralEvent", "attemptNumber": 0, "objectId": contact,
            "eventName": name}
    if path:
        item["properties"] = {"path": path}
    return item


def make_bodies(first: int, count: int, per_request: int, leads: int, at_ms: int,
                subscription: int = 7000) -> list[tuple[int, bytes]]:
    """`count` batches; batch i has one eBook download by contact 10,000,000 + i (its push names the batch)
    and page views by contacts among `leads`. Returns (batch number, body). The subscription id tells wrk's
    events (7000) from the probe's (7001) in the inbox."""

    out = []
    paths = ["/pricing", "/blog", "/", "/product"]
    for i in range(first, first + count):
        items = [notification(i * 1000, 10_000_000 + i, f"pe{PORTAL}_ebook_downloaded", at_ms, None, subscription)]
        for j in range(1, per_request):
            n = i * per_request + j
            items.append(notification(i * 1000 + j, 1 + n % leads, f"pe{PORTAL}_page_viewed", at_ms + j,
                                      paths[n % len(paths)], subscription))
        out.append((i, json.dumps(items, separators=(",", ":")).encode()))
    return out


def headers_for(body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time() * 1000))
    return {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": timestamp,
            "X-HubSpot-Signature-v3": sign(SECRET, "POST", PUBLIC_URL, body, timestamp)}


def write_requests(path: Path, bodies: list[tuple[int, bytes]]) -> None:
    with open(path, "w", encoding="ascii") as out:
        for _, body in bodies:
            h = headers_for(body)
            out.write(f"{h['X-HubSpot-Signature-v3']}\t{h['X-HubSpot-Request-Timestamp']}\t{body.decode()}\n")


def run_wrk(url: str, requests_file: Path, connections: int, threads: int, duration: float) -> dict[str, float]:
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{int(duration)}s", "--timeout", "30s",
               "-s", str(LUA), url, "--", str(requests_file), str(threads)]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = dict(re.findall(r"^LUA (\w+)=([\d.]+)$", done.stdout, re.M))
    if not found:
        raise RuntimeError(f"wrk said:\n{done.stdout}\n{done.stderr}")
    # wrk's own "requests in N s" is always the full -d, even when every body was sent earlier; the caller
    # takes the time of the last durable accept from the store instead.
    return {"ok": float(found["ok"]), "bad": float(found["bad"]), "started": started,
            "p50": float(found["p50"]) / 1000, "p99": float(found["p99"]) / 1000}


class Probe(threading.Thread):
    """One keep-alive connection sending a signed request every `every` seconds; notes when each was sent."""

    def __init__(self, port: int, path: str, bodies: list[tuple[int, bytes]], every: float):
        super().__init__(daemon=True)
        self.port, self.path, self.bodies, self.every = port, path, bodies, every
        self.sent: dict[int, float] = {}
        self.acks: list[float] = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for number, body in self.bodies:
            if self.stop.is_set():
                break
            started = time.time()
            try:
                conn.request("POST", self.path, body, headers_for(body))
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    self.sent[number] = started
                    self.acks.append(time.time() - started)
                else:
                    self.errors += 1
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.stop.wait(max(0.0, self.every - (time.time() - started)))
        conn.close()


BASELINE_APP = textwrap.dedent("""\
    import sqlite3, sys, threading, time
    import waitress
    from flask import Flask, request
    from crmrules_hubspot.signature import SignatureError, verify

    path, port, secret, public_url = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    local = threading.local()

    def db():
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS bodies (seq INTEGER PRIMARY KEY, received_at REAL, "
                         "body TEXT NOT NULL)")
        return conn

    app = Flask("baseline")

    @app.post("/hooks/hubspot")
    def receive():
        body = request.get_data()
        try:
            verify(secret=secret, method="POST", uri=public_url, body=body,
                   signature=request.headers.get("X-HubSpot-Signature-v3"),
                   timestamp=request.headers.get("X-HubSpot-Request-Timestamp"))
        except SignatureError as exc:
            return {"error": exc.reason}, 401
        conn = db()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO bodies (received_at, body) VALUES (?,?)", (time.time(), body.decode("utf-8")))
        conn.execute("COMMIT")
        return {"ok": True}

    @app.get("/readyz")
    def ready():
        return "ok"

    waitress.serve(app, host="127.0.0.1", port=port, threads=8, _quiet=True)
""")


def wait_ready(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("baseline server not ready")


def run_baseline(folder: Path, bodies_file: Path, args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    script = folder / "baseline_app.py"
    script.write_text(BASELINE_APP)
    proc = subprocess.Popen([sys.executable, str(script), str(folder / "baseline.sqlite"), str(port), SECRET,
                             PUBLIC_URL], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        result = run_wrk(f"http://127.0.0.1:{port}/hooks/hubspot", bodies_file, args.connections, args.threads,
                         args.duration)
        time.sleep(1.0)
        with sqlite3.connect(folder / "baseline.sqlite") as db:
            result["elapsed"] = db.execute("SELECT max(received_at) FROM bodies").fetchone()[0] - result["started"]
        return result
    finally:
        proc.terminate()
        proc.wait(10)


def run_sidecar(folder: Path, bodies_file: Path, probe_bodies: list[tuple[int, bytes]],
                args: argparse.Namespace, worker: bool = True,
                bodies: list[tuple[int, bytes]] | None = None) -> dict[str, float]:
    target = start_target()
    folder = folder / ("sidecar" if worker else "receive-only")
    pack = folder / "pack"
    pack.mkdir(parents=True)
    (pack / "pack.yaml").write_text(PACK)
    config = {"rules": [str(pack)], "targets": {"task": "testhook"}, "max_body_bytes": 5_000_000,
              "plugins": {"hubspot": {"public_url": PUBLIC_URL, "portal_ids": [PORTAL], "event_names": NAMES,
                                      "max_batch": 100},
                          "testhook": {"key": "k", "url": target.url}}}
    env = {"HUBSPOT_CLIENT_SECRET": SECRET, "CRMRULES_LOAD_PLUGINS": "hubspot",
           "CRMRULES_PLUGINS_PATH": str(ROOT / "tests" / "support" / "testhook_plugin.py")}
    sidecar = start_sidecar(folder / "serve", config, env=env, args=[] if worker else ["--no-worker"])
    idle = Probe(sidecar.port, "/hooks/hubspot", probe_bodies[:20], args.probe_every * 2)
    probe = Probe(sidecar.port, "/hooks/hubspot", probe_bodies[20:], args.probe_every)
    try:
        if not worker:  # only how fast requests are durably accepted, with no evaluation competing
            result = run_wrk(sidecar.url + "/hooks/hubspot", bodies_file, args.connections, args.threads,
                             args.duration)
            time.sleep(1.0)
            with sqlite3.connect(f"file:{sidecar.store_path}?mode=ro", uri=True) as db:
                result["elapsed"] = db.execute("SELECT max(received_at) FROM inbox").fetchone()[0] - result["started"]
            return result
        idle.start()  # request → push with nothing else going on, first
        idle.join()
        if args.paced:  # every request is a probe, sent at a fixed rate: latency at a load the sidecar keeps up with
            assert bodies is not None
            probe = Probe(sidecar.port, "/hooks/hubspot", bodies[:int(args.duration * args.paced)], 1 / args.paced)
            started = time.time()
            probe.start()
            probe.join()
            result = {"ok": float(len(probe.sent)), "bad": float(probe.errors), "started": started,
                      "p50": pct(probe.acks, 50) * 1000, "p99": pct(probe.acks, 99) * 1000}
        else:
            probe.start()
            result = run_wrk(sidecar.url + "/hooks/hubspot", bodies_file, args.connections, args.threads,
                             args.duration)
            probe.stop.set()
            probe.join()
        time.sleep(1.0)  # requests wrk had in flight when it stopped are answered (and stored) meanwhile
        with sqlite3.connect(f"file:{sidecar.store_path}?mode=ro", uri=True) as db:
            result["events"] = db.execute("SELECT count(*) FROM inbox").fetchone()[0]
            result["pending"] = db.execute("SELECT count(*) FROM inbox WHERE status='pending'").fetchone()[0]
            result["elapsed"] = db.execute("SELECT max(received_at) FROM inbox WHERE key LIKE 'hubspot:%:7000:%'"
                                           ).fetchone()[0] - result["started"]
            result["wrk_events"] = db.execute("SELECT count(*) FROM inbox WHERE key LIKE 'hubspot:%:7000:%'"
                                              ).fetchone()[0]
            expected = db.execute("SELECT count(*) FROM inbox WHERE payload LIKE '%\"type\":\"ebook_download\"%'"
                                  ).fetchone()[0]  # one task each
        deadline = time.monotonic() + 600
        while len(target.successes()) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        pushed = target.successes()
        last_accept = result["started"] + result["elapsed"]
        result["drained"] = max((r.at for r in pushed), default=last_accept) - last_accept
        result["pushed"] = len(pushed)
        result["distinct"] = len({r.key for r in pushed})  # Idempotency-Key: a re-push has the same one
        result["expected"] = expected
        arrived = {}
        for r in pushed:
            contact = int((r.body or {}).get("identities", {}).get("hubspot_id", 0))
            arrived.setdefault(contact - 10_000_000, r.at)
        latencies = [arrived[n] - sent for n, sent in probe.sent.items() if n in arrived]
        unloaded = [arrived[n] - sent for n, sent in idle.sent.items() if n in arrived]
        result["idle_p50"] = pct(unloaded, 50)
        result["idle_max"] = max(unloaded, default=float("nan"))
        result["probes"] = len(probe.sent)
        result["probe_errors"] = probe.errors + idle.errors
        result["push_p50"] = pct(latencies, 50)
        result["push_p99"] = pct(latencies, 99)
        result["push_max"] = max(latencies, default=float("nan"))
        return result
    finally:
        sidecar.stop()
        assert target.server is not None
        target.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20, help="seconds of load, at most 200")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--events-per-request", type=int, default=100)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--rate-guess", type=float, default=20000,
                        help="events/s to pre-sign bodies for: more than can be sent, each body goes once")
    parser.add_argument("--probe-every", type=float, default=0.1)
    parser.add_argument("--paced", type=float, default=0, metavar="REQ_PER_S",
                        help="instead of wrk's closed loop, one Python connection sending at this rate; every "
                             "request's task is timed (the baseline and --no-worker runs are skipped)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    parser.add_argument("--no-receive-only", dest="receive_only", action="store_false",
                        help="skip the run of `serve --no-worker` (accepting only, nothing evaluated)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    args.duration = min(args.duration, 200)
    now_ms = int(time.time() * 1000)
    count = min(50_000, int(args.duration * args.rate_guess / args.events_per_request))
    bodies = make_bodies(0, count, args.events_per_request, args.leads, now_ms)
    probes = make_bodies(count, int(args.duration / args.probe_every) + 30, args.events_per_request, args.leads,
                         now_ms, subscription=7001)
    load = (f"paced: {args.paced:g} requests/s from one Python connection" if args.paced else
            f"wrk {args.threads} thread(s), {args.connections} connections")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {load}, {args.duration:.0f} s; "
          f"{args.events_per_request} events/request; {len(bodies):,} distinct pre-signed bodies", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bodies_file = folder / "requests.tsv"
        write_requests(bodies_file, bodies)
        base = run_baseline(folder, bodies_file, args) if args.baseline and not args.paced else None
        write_requests(bodies_file, bodies)  # fresh timestamps
        accept_only = (run_sidecar(folder, bodies_file, probes, args, worker=False)
                       if args.receive_only and not args.paced else None)
        write_requests(bodies_file, bodies)
        ours = run_sidecar(folder, bodies_file, probes, args, bodies=bodies)
    per = args.events_per_request
    rows = [("crmrules serve", ours)] + ([("serve --no-worker", accept_only)] if accept_only else []) + \
        ([("baseline: verify + INSERT", base)] if base else [])
    print(f"{'':<26} {'req/s':>8} {'events/s':>9} {'ack p50 ms':>11} {'ack p99 ms':>11} {'non-200':>8}")
    for name, r in rows:
        print(f"{name:<26} {r['ok'] / r['elapsed']:>8,.0f} {r['ok'] * per / r['elapsed']:>9,.0f} "
              f"{r['p50']:>11.1f} {r['p99']:>11.1f} {r['bad']:>8.0f}")
    if base:
        print(f"crmrules / baseline requests/s: {ours['ok'] / ours['elapsed'] / (base['ok'] / base['elapsed']):.2f}")
    print(f"inbox: {ours['events']:,} events (load + probes), {ours['pending']:,} not yet evaluated when the load "
          f"ended; tasks pushed {ours['pushed']:,} ({ours['distinct']:,} distinct) of {ours['expected']:,}, the last "
          f"{ours['drained']:.1f} s after the last request was accepted")
    print(f"request → task pushed, 20 probes on the idle sidecar first: p50 {ours['idle_p50'] * 1000:.0f} ms, "
          f"max {ours['idle_max'] * 1000:.0f} ms")
    what = "paced requests" if args.paced else "probes under load"
    print(f"request → task pushed, {ours['probes']} {what}: p50 {ours['push_p50'] * 1000:.0f} ms, "
          f"p99 {ours['push_p99'] * 1000:.0f} ms, max {ours['push_max'] * 1000:.0f} ms"
          f" ({ours['probe_errors']} probe errors)")


if __name__ == "__main__":
    main()
