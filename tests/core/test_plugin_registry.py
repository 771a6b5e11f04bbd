"""Plugins register what they provide by name, and a plugin that cannot load is refused with one line naming it:
a misspelt hook (`crmrules plugins`, `crmrules serve`), a failed import (`crmrules check` goes on), a name two
plugins claim. Real CLI subprocesses with plugins from files and from an entry point; the registry in process."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from crmrules.api import Event, RegisterSource, RegisterTarget, Runtime, hookimpl, ingest
from crmrules.receiver import create_app
from crmrules.registry import Registry
from tests.support import testhook_plugin

ROOT = Path(__file__).resolve().parents[2]
PACK = "rules:\n  - id: a\n    when: {event: signup}\n    then: [{tag: new}]\n"

MISSPELT = '''
from crmrules.api import hookimpl

@hookimpl
def register_tragets(register):
    register("sms", lambda item, context: "sent")
'''

OLD_STYLE = '''
from crmrules.api import hookimpl

@hookimpl
def push_action(target, item, settings):
    return "pushed" if target == "old" else None
'''

BROKEN = '''
raise RuntimeError("this plugin needs libfoo 2")
'''

SMS = '''
from crmrules.api import hookimpl

@hookimpl
def register_targets(register):
    register("sms", lambda item, context: "sent")
'''


def plugin_files(tmp_path: Path, **sources: str) -> str:
    paths = []
    for name, text in sources.items():
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        paths.append(str(path))
    return ",".join(paths)


def crmrules(tmp_path: Path, *args: str, plugins: str = "", load: str = "", pythonpath: str = "",
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CRMRULES_CONFIG"}
    env.update(CRMRULES_PLUGINS_PATH=plugins, CRMRULES_LOAD_PLUGINS=load, PYTHONPATH=pythonpath)
    return subprocess.run([sys.executable, "-m", "crmrules.cli", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=timeout)


# ---------------------------------------------------------------- refused at load, one line each

def test_a_misspelt_hook_is_one_line_naming_plugin_and_hook_in_plugins_and_serve(tmp_path: Path) -> None:
    files = plugin_files(tmp_path, misspelt=MISSPELT, sms_again=SMS)
    listed = crmrules(tmp_path, "plugins", plugins=files)
    assert listed.returncode == 1
    expected = (f"plugin 'misspelt' (file {tmp_path / 'misspelt.py'}): 'register_tragets' is not a crmrules hook "
                "(did you mean 'register_targets'?)")
    assert listed.stderr.splitlines() == [expected], listed.stderr
    assert "sms_again (file" in listed.stdout and "target sms" in listed.stdout  # the others still load

    (tmp_path / "pack.yaml").write_text(PACK, encoding="utf-8")
    (tmp_path / "crmrules.yaml").write_text("rules: [pack.yaml]\n", encoding="utf-8")
    served = crmrules(tmp_path, "serve", "--port", "0", plugins=files)
    assert served.returncode == 1
    assert expected in served.stderr.splitlines(), served.stderr
    assert "crmrules: serving" not in served.stdout


def test_a_hook_that_is_gone_points_to_its_replacement(tmp_path: Path) -> None:
    listed = crmrules(tmp_path, "plugins", plugins=plugin_files(tmp_path, old_style=OLD_STYLE))
    assert listed.returncode == 1
    assert listed.stderr.strip().endswith("'push_action' is not a crmrules hook (did you mean 'register_targets'?)")


def test_a_plugin_that_fails_to_import_does_not_take_check_down(tmp_path: Path) -> None:
    # One from a file, one from an installed distribution's entry point (a dist-info on PYTHONPATH).
    site = tmp_path / "site"
    (site / "crmrules_libfoo-0.1.dist-info").mkdir(parents=True)
    (site / "crmrules_libfoo-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: crmrules-libfoo\nVersion: 0.1\n", encoding="utf-8")
    (site / "crmrules_libfoo-0.1.dist-info" / "entry_points.txt").write_text(
        "[crmrules]\nlibfoo = crmrules_libfoo\n", encoding="utf-8")
    (site / "crmrules_libfoo.py").write_text("import libfoo_that_is_not_installed\n", encoding="utf-8")
    pack = tmp_path / "pack.yaml"
    pack.write_text(PACK, encoding="utf-8")

    out = crmrules(tmp_path, "check", str(pack), plugins=plugin_files(tmp_path, broken=BROKEN), load="libfoo",
                   pythonpath=str(site))
    assert out.returncode == 0, out.stderr
    assert "ok: 1 pack(s), 1 rule(s)" in out.stdout
    assert (f"warning: plugin 'broken' (file {tmp_path / 'broken.py'}): cannot be imported: RuntimeError: this "
            "plugin needs libfoo 2") in out.stderr.splitlines()
    assert ("warning: plugin 'libfoo' (module crmrules_libfoo): cannot be imported: ModuleNotFoundError: No module "
            "named 'libfoo_that_is_not_installed'") in out.stderr.splitlines()
    assert len(out.stderr.splitlines()) == 2


def test_a_target_name_taken_twice_is_refused_naming_both_plugins(tmp_path: Path) -> None:
    files = plugin_files(tmp_path, first=SMS, second=SMS)
    listed = crmrules(tmp_path, "plugins", plugins=files)
    assert listed.returncode == 1
    assert listed.stderr.splitlines() == [
        f"plugin 'second' (file {tmp_path / 'second.py'}): target 'sms' is already registered by plugin 'first' "
        f"(file {tmp_path / 'first.py'})"]


def test_the_cli_without_plugins_lists_the_built_in_sources_and_actions(tmp_path: Path) -> None:
    listed = crmrules(tmp_path, "plugins")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "crmrules (built in): source import (trusted); source test (trusted); action score; action tag; "
        "action untag; action set; action task; action message; action webhook"]


def test_a_plugin_cannot_take_a_built_in_action_name() -> None:
    from pydantic import BaseModel

    class Fields(BaseModel):
        text: str

    registry = Registry.of({"thief": module("thief", register_actions=lambda register: register("task", Fields))})
    assert registry.actions["task"].name == "task" and registry.actions["task"].model is None  # still the built-in
    assert any("thief" in line and "task" in line for line in registry.errors), registry.errors


# ---------------------------------------------------------------- the registry, in process

def module(name: str, **hooks: object) -> types.ModuleType:
    found = types.ModuleType(name)
    for hook, function in hooks.items():
        setattr(found, hook, hookimpl(function))
    return found


def test_sources_declare_their_trust_and_an_undeclared_one_is_untrusted() -> None:
    def register_sources(register: RegisterSource) -> None:
        register("forms")
        register("signed", trusted=True)

    registry = Registry.of({"testhook": testhook_plugin, "forms": module("forms", register_sources=register_sources)})
    assert registry.errors == []
    assert registry.trusted_sources() == {"import", "test", "testhook", "signed"}
    assert registry.sources["forms"].trusted is False and registry.sources["forms"].plugin == "forms"
    assert registry.sources["testhook"].plugin == "testhook"  # the name of its settings section
    assert registry.targets["testhook"].push is testhook_plugin.push


@pytest.mark.parametrize("register_call, error", [
    (lambda r: r("web", trusted="yes"), "plugin 'bad' (module bad): source 'web': trusted must be True or False"),
    (lambda r: r("web", blueprint=object()),
     "plugin 'bad' (module bad): source 'web': blueprint must be a flask.Blueprint"),
    (lambda r: r("has space"), "plugin 'bad' (module bad): 'has space' is not a valid source name"),
    (lambda r: r("import"),
     "plugin 'bad' (module bad): source 'import' is already registered by plugin 'crmrules' (built in)"),
    (lambda r: r("web", pul=lambda since, context: None),
     "plugin 'bad' (module bad): register_sources raised TypeError: "),
])
def test_a_bad_registration_is_one_line_and_the_rest_loads(register_call, error) -> None:
    def register_sources(register: RegisterSource) -> None:
        register_call(register)

    registry = Registry.of({"testhook": testhook_plugin, "bad": module("bad", register_sources=register_sources)})
    [line] = registry.errors
    assert line.startswith(error), line
    assert "testhook" in registry.sources and "web" not in registry.sources


def test_a_hook_with_the_wrong_arguments_is_refused_in_one_line() -> None:
    def register_targets(reg: RegisterTarget) -> None:
        reg("sms", lambda item, context: "sent")

    registry = Registry.of({"bad": module("bad", register_targets=register_targets)})
    [line] = registry.errors
    assert line == ("plugin 'bad' (module bad): register_targets(reg) does not match the hook; crmrules calls "
                    "register_targets(register)")
    assert "sms" not in registry.targets


def test_ingest_refuses_an_event_of_a_source_no_plugin_registered(tmp_path: Path) -> None:
    app = create_app(Runtime(ingest=lambda events: [True] * len(events), settings={}),
                     Registry.of({"testhook": testhook_plugin}), packs=[])
    now = dt.datetime.now(dt.timezone.utc)
    with app.test_request_context():
        assert ingest([Event(id="1", source="testhook", type="signup", occurred_at=now,
                             subject={"ids": {"email": "kim@example.com"}})]) == [True]
        with pytest.raises(ValueError, match="source 'hubspott' is not registered by any plugin"):
            ingest([Event(id="2", source="hubspott", type="signup", occurred_at=now,
                          subject={"ids": {"email": "kim@example.com"}})])
