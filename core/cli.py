"""The `crmrules` command line (click): init, check, test, run, explain, demo, outbox, prune, serve, plugins."""

from __future__ import annotations

import datetime as dt
import difflib
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import plugins
from .config import Settings, load_settings
from .language import PackError, ast, load_pack
from .language.loader import load_rules

if TYPE_CHECKING:
    from .store import OutboxStatus, OutboxStore, Store


def _fail(message: str, code: int = 1) -> NoReturn:
    click.secho(message, fg="red", err=True)
    sys.exit(code)


def _packs_or_exit(paths: list[str], settings: Settings | None = None) -> list[ast.Pack]:
    try:
        return load_rules(paths, settings)
    except PackError as exc:
        for err in exc.errors:
            click.echo(str(err), err=True)
        _fail(f"{len(exc.errors)} error(s) in the rule packs")
    except FileNotFoundError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Deployment settings (crmrules.yaml; default: $CRMRULES_CONFIG or ./crmrules.yaml).")
@click.version_option(package_name="crmrules")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """crmrules: your sales and marketing playbook as YAML rules, beside your CRM."""

    ctx.obj = {"config": config_path}


def _settings(ctx: click.Context) -> Settings:
    return load_settings(ctx.obj.get("config"))


def _plugin_load_warnings() -> None:
    """Plugins left out (cannot be imported, a hook that does not exist, a name taken twice), one line each."""

    for line in plugins.load_errors():
        click.secho(f"warning: {line}", fg="yellow", err=True)


def _plugin_settings_or_exit(settings: Settings) -> None:
    """Plugin options checked against the models the plugins declare; unknown sections only warn (a plugin
    may be installed where the sidecar runs and not where `check` runs)."""

    problems, unchecked = plugins.check_settings(settings.plugins)
    loaded = sorted({*plugins.plugin_names(), *plugins.settings_models()})
    for name in unchecked:
        close = difflib.get_close_matches(name, loaded, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "is it installed, or misspelled?"
        click.secho(f"warning: plugins.{name}: no loaded plugin declares these options (loaded: "
                    f"{', '.join(loaded) or 'none'}); {hint}", fg="yellow", err=True)
    for line in problems:
        click.echo(line, err=True)
    if problems:
        _fail(f"{len(problems)} error(s) in the plugin settings")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.pass_context
def check(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Validate rule packs, the tests beside them (tests/*.yaml) and the plugin options.

    Every error with file:line:column. Exits 1 on errors."""

    from .testing import check_pack_tests

    settings = _settings(ctx)
    _plugin_load_warnings()
    packs = _packs_or_exit(list(paths) or settings.rules, settings)
    _plugin_settings_or_exit(settings)
    table = plugins.action_types()
    routing = settings.target_problems(plugins.targets(), table)
    for line in routing:
        click.echo(line, err=True)
    if routing:
        _fail(f"{len(routing)} error(s) in targets:")
    checked = [check_pack_tests(pack, table, _reloader(table), _test_sources()) for pack in packs]
    errors = [err for c in checked for err in c.errors]
    for err in errors:
        click.echo(str(err), err=True)
    if errors:
        _fail(f"{len(errors)} error(s) in the pack tests")
    rules = sum(len(p.rules) for p in packs)
    files, cases = sum(c.files for c in checked), sum(c.cases for c in checked)
    click.echo(f"ok: {len(packs)} pack(s), {rules} rule(s), {files} test file(s), {cases} case(s)")
    for pack, tests in zip(packs, checked):
        modes = Counter(r.mode for r in pack.rules)
        extra = ", ".join(f"{n} {m}" for m, n in sorted(modes.items()) if m != "enabled")
        click.echo(f"  {pack.name}: {len(pack.rules)} rules" + (f" ({extra})" if extra else "")
                   + f", {tests.cases} test case(s)")


def _test_sources() -> frozenset[str]:
    """The sources a pack test's event may name: those the loaded plugins (and the core) registered, each with
    the trust it declared."""

    return frozenset(plugins.get_registry().sources)


def _reloader(table: dict[str, Any]) -> Any:
    """A pack loaded again with a test case's `vars:` (and the plugins' actions and conditions)."""

    def reload(pack: ast.Pack, overrides: dict[str, Any]) -> ast.Pack:
        return load_pack(pack.path, overrides, table, plugins.condition_functions())

    return reload


@cli.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("-k", "keyword", default=None, help="Only cases whose name contains this text.")
@click.option("-v", "--verbose", is_flag=True, help="List every case, and the decision trail of failures.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the results as JUnit XML to this file (for CI).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of text.")
@click.option("--coverage", "show_coverage", is_flag=True, help="List per pack the rules no case fires or blocks.")
@click.pass_context
def test_cmd(ctx: click.Context, paths: tuple[str, ...], keyword: str | None, verbose: bool, junit_path: str | None,
             as_json: bool, show_coverage: bool) -> None:
    """Run the tests that ship beside rule packs (<pack>/tests/*.yaml). Exits 1 if any fails or is invalid."""

    from . import testing

    settings = _settings(ctx)
    packs = _packs_or_exit(list(paths) or settings.rules, settings)
    table = plugins.action_types()
    zone = _display_zone(settings, packs)
    started = time.perf_counter()
    results: list[testing.CaseResult] = []
    covered: list[testing.Coverage] = []
    say = (lambda *a, **k: None) if as_json else click.echo
    for pack in packs:
        mine = testing.run_pack_tests(pack, table, _reloader(table), keyword, _test_sources(), zone)
        if not mine:
            continue
        covered.append(testing.coverage(pack, mine))
        results += mine
        if verbose:
            for r in mine:
                say(f"{r.file}:{r.line}::{r.name} " + click.style(r.status.upper(),
                                                                  fg="green" if r.ok else "red"))
        else:
            say(f"{pack.name} " + "".join({"passed": ".", "failed": "F", "error": "E"}[r.status] for r in mine))
    for r in results:
        if not r.ok:
            say("")
            say(click.style(f"___ {r.file}:{r.line} {r.name} ___", fg="red", bold=True))
            for line in testing.failure_text(r).splitlines():
                say(f"  {line}")
    elapsed = time.perf_counter() - started
    if junit_path:
        testing.write_junit(junit_path, results, elapsed)
    if as_json:
        click.echo(testing.as_json(results, covered, elapsed, zone))
    n: Counter[str] = Counter(r.status for r in results)
    missing = sum(len(c.missing) for c in covered)
    if show_coverage:
        say("")
        say("coverage (rules some case fires, shadows or blocks):")
        for c in covered:
            say(f"  {c.line()}")
    parts = [f"{n['passed']} passed"] + [f"{n[s]} {w}" for s, w in (("failed", "failed"), ("error", "invalid"))
                                         if n[s]]
    summary = ", ".join(parts) + f" in {elapsed:.2f}s"
    if show_coverage:
        summary += f"; {missing} rule(s) not exercised" if missing else "; every rule exercised"
    if not as_json:
        click.secho(f"{'=' * 20} {summary} {'=' * 20}", fg="red" if n["failed"] or n["error"] else "green")
    if not results:
        click.echo("no rule tests found (put them in <pack>/tests/*.yaml)", err=True)
    if n["failed"] or n["error"] or not results:
        sys.exit(1)


def _display_zone(settings: Settings, packs: list[ast.Pack] | None = None) -> Any:
    """The zone printed times are shown in (`timezone:`, else the packs' own zone, else UTC; core/times.py).

    Commands that do not load packs (`outbox list`) read them here only when `timezone:` is unset."""

    if settings.timezone or packs is not None:
        return settings.display_zone(packs or [])
    try:
        return settings.display_zone(load_rules(settings.rules, settings))
    except (PackError, FileNotFoundError, OSError):
        return settings.display_zone([])


def _summary(pipeline: Any, read: int, errors: list[str], elapsed: float, zone: Any, span: tuple[float, float] | None,
             until: float | None, live: bool, store_path: str) -> dict[str, Any]:
    """What `crmrules run` reports, as data: the text and `--json` are two views of it."""

    from .times import iso

    stats = pipeline.stats
    leads = sorted(pipeline.store.entities("lead"), key=lambda e: -e[2].get("score", 0))[:10]
    return {
        "store": store_path,
        "live": live,
        "outbox_status": "pending" if live else "replayed",
        "zone": str(zone),
        "first_event": iso(span[0], zone) if span else None,
        "last_event": iso(span[1], zone) if span else None,
        "until": iso(until, zone),
        "events": {"read": read + len(errors), "processed": stats.events, "already_seen": stats.duplicates,
                   "rejected": len(errors) + len(pipeline.rejected)},
        "rejected": errors + pipeline.rejected,
        "timers_fired": stats.timers,
        "decisions": dict(sorted(stats.decisions.items())),
        "actions": dict(sorted(stats.actions.items())),
        "top_leads": [{"id": entity_id, "name": _name(state), "score": state.get("score", 0),
                       "tags": state.get("tags", [])}
                      for entity_id, _kind, state in leads if state.get("score", 0) > 0],
        "seconds": round(elapsed, 3),
    }


def _print_summary(summary: dict[str, Any], zone: Any) -> None:
    from .times import show

    def at(text: str | None) -> str:
        return show(dt.datetime.fromisoformat(text).timestamp(), zone) if text else "-"

    events = summary["events"]
    rate = events["processed"] / summary["seconds"] if summary["seconds"] else 0
    click.echo("")
    if summary["first_event"]:
        span = f"event time {at(summary['first_event'])} → {at(summary['last_event'])}"
        if summary["until"]:
            span += f", clock moved on to {at(summary['until'])}"
        click.echo(span)
    click.echo(f"events: {events['processed']} processed, {events['already_seen']} already seen, "
               f"{events['rejected']} rejected ({rate:,.0f}/s)")
    click.echo("decisions: " + (", ".join(f"{n} {k}" for k, n in summary["decisions"].items()) or "none"))
    click.echo("actions: " + (", ".join(f"{n} {k}" for k, n in summary["actions"].items()) or "none"))
    if summary["actions"]:
        if summary["live"]:
            click.echo(f"  queued as pending in {summary['store']}: `crmrules serve` on this store pushes them (--live)")
        else:
            click.echo(f"  kept as `replayed` in {summary['store']}'s outbox: never pushed (--live queues them)")
    if summary["top_leads"]:
        click.echo("top-scored leads:")
        for lead in summary["top_leads"]:
            click.echo(f"  {lead['score']:>6g}  {lead['name']}  {', '.join(lead['tags'])}")


def _name(state: dict[str, Any]) -> str:
    from .people import display_name

    props = state.get("props", {})
    return display_name(props) or props.get("email") or state.get("id", "")


@cli.command()
@click.option("--rules", "rule_paths", multiple=True, type=click.Path(exists=True), help="Pack folder or file (repeatable).")
@click.option("--events", "event_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Events as JSONL or CSV (docs/event-files.md).")
@click.option("--store", "store_path", default=None, help="SQLite file to keep state in (default from settings).")
@click.option("--until", default=None,
              help="Move the clock on to this time at the end, firing waiting rules: an ISO time, a date, now, "
                   "today, tomorrow, or +3d (after the last event); a zone may follow (2026-03-05 Asia/Seoul).")
@click.option("--live", is_flag=True,
              help="Queue the decided actions as pending, for `crmrules serve` on this store to push. Without it "
                   "they are kept as `replayed` outbox rows that nothing pushes.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--matcher", type=click.Choice(["durable", "python"]), default="durable", show_default=True,
              help="Which matcher evaluates conditions.")
@click.pass_context
def run(ctx: click.Context, rule_paths: tuple[str, ...], event_file: str, store_path: str | None, until: str | None,
        live: bool, as_json: bool, matcher: str) -> None:
    """Replay events through the rules in event time, then summarise what was decided.

    A replay pushes nothing unless --live says so. Exits 1 if any line was rejected (each is listed with its
    line number and why), 2 on a bad option."""

    import json

    from .eventfile import read_events
    from .pipeline import Pipeline
    from .store import open_store
    from .times import moment

    settings = _settings(ctx)
    packs = _packs_or_exit(list(rule_paths) or settings.rules, settings)
    zone = _display_zone(settings, packs)
    errors: list[str] = []
    started = time.perf_counter()
    events = list(read_events(event_file, errors))
    span = (min(e.ts() for e in events), max(e.ts() for e in events)) if events else None
    until_ts = None
    if until is not None:
        try:
            until_ts = moment(until, zone, time.time(), offsets_from=span[1] if span else None)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--until") from None
    path = store_path or settings.store
    store = open_store(path)
    pipeline = Pipeline(store, packs, matcher=matcher)
    try:
        with click.progressbar(length=len(events), label="replaying", file=sys.stderr, show_pos=True) as bar:
            pipeline.replay(events, until=until_ts, progress=bar.update, live=live)
        summary = _summary(pipeline, len(events), errors, time.perf_counter() - started, zone, span, until_ts, live,
                           path)
    finally:
        store.close()
    rejected = summary["rejected"]
    for line in rejected[:20]:
        click.secho(line, fg="yellow", err=True)
    if len(rejected) > 20:
        click.secho(f"... and {len(rejected) - 20} more rejected lines", fg="yellow", err=True)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        _print_summary(summary, zone)
    if rejected:
        click.secho(f"{len(rejected)} line(s) rejected: nothing of them was stored", fg="red", err=True)
        sys.exit(1)


@cli.command()
@click.argument("lead")
@click.argument("rule", required=False)
@click.option("--store", "store_path", default=None, help="SQLite store (default from settings).")
@click.option("--rules", "rule_paths", multiple=True, type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (times ISO 8601 in the display zone).")
@click.pass_context
def explain(ctx: click.Context, lead: str, rule: str | None, store_path: str | None, rule_paths: tuple[str, ...],
            as_json: bool) -> None:
    """Why a lead got what it got: its events, score, the rules that fired and why the others did not.

    LEAD is an email, a CRM id, a lead id or a name; RULE narrows the answer to one rule, written as every
    output prints it (pack/rule) or as a bare rule id. An unknown lead or rule exits 1.
    """

    from .explain import UnknownRule, as_json as explain_json, explain as explain_lead, find_rules, render
    from .pipeline import Pipeline
    from .store import open_store

    settings = _settings(ctx)
    path = store_path or settings.store
    if not Path(path).exists():
        _fail(f"{path}: no store here; run `crmrules run` or `crmrules serve` first, or pass --store")
    packs = _packs_or_exit(list(rule_paths) or settings.rules, settings)
    keys = None
    if rule:
        try:
            keys = find_rules(packs, rule)
        except UnknownRule as exc:
            _fail(str(exc))
    store = open_store(path)
    try:
        entity = store.find_entity(lead)
        if entity is None:
            _fail(f"no lead matches {lead!r} in {path}")
        answer = explain_lead(Pipeline(store, packs), entity, keys)
    finally:
        store.close()
    zone = _display_zone(settings, packs)
    click.echo(explain_json(answer, zone) if as_json else render(answer, zone))


@cli.command()
@click.option("--store", "store_path", default=None, help="Keep the demo's store here (default: a temporary file).")
@click.pass_context
def demo(ctx: click.Context, store_path: str | None) -> None:
    """Replay the example data through the shipped packs and print the prioritised leads.

    Nothing is pushed: what the demo decides stays in its store's outbox as `replayed` rows. Times are shown in
    the deployment's `timezone:` if one is set, else in the packs' own zone (Asia/Seoul)."""

    from . import shipped
    from .demo import run_demo

    run_demo(shipped.packs_folder(), shipped.demo_folder(), store_path, _settings(ctx).timezone)


@cli.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.pass_context
def init(ctx: click.Context, file: str | None, force: bool) -> None:
    """Write a commented crmrules.yaml to start a deployment from; `crmrules check` accepts it as it is.

    FILE defaults to --config, else ./crmrules.yaml.

    It runs the shipped packs, a store beside it and the web tracker with a write key of its own, and pushes
    nothing to a CRM until `targets:` says so; every other section is shown with its defaults.
    """

    import secrets

    from . import shipped

    target = Path(file or ctx.obj.get("config") or "crmrules.yaml")
    if target.exists() and not force:
        _fail(f"{target}: already there; keeping it (pass --force to overwrite it)")
    text = shipped.starter_config().replace("WRITE_KEY", "wk_" + secrets.token_urlsafe(12))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target}: the shipped packs, store {Path(target.parent, 'crmrules.sqlite')}, the web "
               "tracker; nothing pushed to a CRM until `targets:` says so")
    hint = "" if target.name == "crmrules.yaml" and target.parent.resolve() == Path.cwd().resolve() \
        else f"--config {target} "
    click.echo(f"next: edit it, then `crmrules {hint}check` and `crmrules {hint}serve`")


@cli.group()
def outbox() -> None:
    """Inspect and manage actions waiting to be pushed, and the dead letters."""


def _store(ctx: click.Context, store_path: str | None) -> Store:
    from .store import open_store

    return open_store(store_path or _settings(ctx).store)


@outbox.command("list")
@click.option("--status", type=click.Choice(["pending", "sending", "sent", "dead", "cancelled", "replayed"]),
              default=None, help="Only rows of this status (replayed: decided by a replay, never pushed).")
@click.option("--store", "store_path", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON (with each action's fields).")
@click.pass_context
def outbox_list(ctx: click.Context, status: OutboxStatus | None, store_path: str | None, as_json: bool) -> None:
    """List outbox rows (dead letters with --status dead); times in the display zone."""

    import json

    from .times import iso, show

    settings = _settings(ctx)
    store = _store(ctx, store_path)
    zone = _display_zone(settings)
    rows = store.outbox_rows(status)
    counts = store.outbox_counts()
    if as_json:
        out = {"zone": str(zone), "counts": counts, "rows": [
            {"key": r["key"], "status": r["status"], "action_type": r["action_type"], "rule": r["rule"],
             "entity_id": r["entity_id"], "due_at": iso(r["due_at"], zone), "next_at": iso(r["next_at"], zone),
             "attempts": r["attempts"], "last_error": r["last_error"], "sent_at": iso(r["sent_at"], zone),
             "action": json.loads(r["body"]).get("action")} for r in rows]}
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    click.echo("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "the outbox is empty")
    for r in rows:
        click.echo(f"{r['key'][:12]}  {r['status']:<9} {r['action_type']:<8} {r['rule']:<40} due {show(r['due_at'], zone)}"
                   f"  tries {r['attempts']}" + (f"  {r['last_error']}" if r["last_error"] else ""))


@outbox.command("retry")
@click.argument("key", required=False)
@click.option("--store", "store_path", default=None)
@click.pass_context
def outbox_retry(ctx: click.Context, key: str | None, store_path: str | None) -> None:
    """Send dead letters again (one by KEY, or all)."""

    store = _store(ctx, store_path)
    full = _full_key(store, key) if key else None
    click.echo(f"{store.retry_dead(full)} action(s) queued again")


@outbox.command("drop")
@click.argument("key")
@click.option("--store", "store_path", default=None)
@click.pass_context
def outbox_drop(ctx: click.Context, key: str, store_path: str | None) -> None:
    """Give up on one pending or dead action."""

    store = _store(ctx, store_path)
    n = store.drop(_full_key(store, key))
    if not n:
        _fail(f"no pending or dead action with key {key}")
    click.echo("dropped")


def _full_key(store: OutboxStore, prefix: str) -> str:
    keys: list[str] = [r["key"] for r in store.outbox_rows(limit=100000) if r["key"].startswith(prefix)]
    if len(keys) != 1:
        _fail(f"{prefix!r} matches {len(keys)} outbox rows; give more of the key")
    return keys[0]


PRUNE_LABELS = {"inbox_payloads": "inbox payloads (evaluated events; their keys stay for dedup)",
                "inbox_keys": "inbox keys (evaluated events)", "decisions": "decisions",
                "outbox": "outbox rows (sent, cancelled)"}


@cli.command()
@click.option("--dry-run", is_flag=True, help="Count what would be removed; change nothing.")
@click.option("--store", "store_path", default=None, help="SQLite store (default from settings).")
@click.pass_context
def prune(ctx: click.Context, dry_run: bool, store_path: str | None) -> None:
    """Remove what `retention:` in crmrules.yaml no longer keeps, and print how much per table.

    Defaults: event payloads 30d, event keys (redelivery dedup) 90d, decisions 365d, sent/cancelled outbox
    rows 90d. Pending and rejected events, pending/sending/dead actions, timers and entities are never
    removed. Runs in small transactions, so it is safe beside `crmrules serve` (which also prunes hourly).
    Freed space is reused by new rows; the file does not shrink (VACUUM offline for that).
    """

    from .store import open_store
    from .language.durations import format_duration

    settings = _settings(ctx)
    path = store_path or settings.store
    if not Path(path).exists():
        _fail(f"{path}: no store here; pass --store or set `store:` in crmrules.yaml")
    retention = settings.retention
    store = open_store(path)
    try:
        result = store.prune(retention, dry_run=dry_run, pause=0.005)
    finally:
        store.close()
    keep = {"inbox_payloads": retention.events, "inbox_keys": retention.key_horizon,
            "decisions": retention.decisions, "outbox": retention.outbox}
    verb = "would remove" if dry_run else "removed"
    for kind, label in PRUNE_LABELS.items():
        horizon = keep[kind]
        age = f"older than {format_duration(horizon)}" if horizon is not None else "kept forever"
        click.echo(f"{verb} {result.counts[kind]:>9,}  {label}, {age}")
    click.echo(f"{path}: {result.total:,} row(s) {verb}" + (" (dry run)" if dry_run else ""))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int, help="Receiver threads (waitress).")
@click.option("--no-worker", is_flag=True, help="Only receive; another process evaluates and pushes.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, threads: int, no_worker: bool) -> None:
    """Run the sidecar: the webhook receiver, the evaluator and the outbox dispatcher.

    SIGTERM or SIGINT stops it cleanly; SIGHUP re-reads the rule packs (a pack with errors is refused, and the
    packs already running keep running: see /readyz).
    """

    from .sidecar.server import serve as run_server

    settings = _settings(ctx)
    errors = plugins.load_errors()
    if errors:  # a plugin half there (a hook never called, a route never mounted) must not take traffic
        for line in errors:
            click.echo(line, err=True)
        _fail(f"{len(errors)} plugin(s) refused; fix or uninstall them (`crmrules plugins` lists them)")
    packs = _packs_or_exit(settings.rules, settings)
    _plugin_settings_or_exit(settings)
    run_server(settings, packs, host=host, port=port, threads=threads, worker=not no_worker)


@cli.command("plugins")
def list_plugins() -> None:
    """List the loaded plugins and what each provides by name; then those refused (exit 1 if any)."""

    for line in plugins.get_registry().describe():
        click.echo(line)
    errors = plugins.load_errors()
    for line in errors:
        click.secho(line, fg="red", err=True)
    if errors:
        sys.exit(1)


def main() -> None:
    plugins.add_commands(cli)
    cli(prog_name="crmrules")


if __name__ == "__main__":
    main()
