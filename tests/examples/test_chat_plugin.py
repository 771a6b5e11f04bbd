"""The example third-party plugin, installed from examples/ with pip, found through its entry point, and its
action pushed to a real HTTP endpoint by crmrules' own dispatcher-facing hook."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flask import Flask, request

from tests.support.servers import serve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "crmrules-chat"
    shutil.copytree(ROOT / "examples" / "crmrules-chat", source)  # the build writes beside the sources
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(source)],
                   check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=str(target))
    return env


def crmrules(env, *args, **kw):
    return subprocess.run([sys.executable, "-m", "crmrules.cli", *args], capture_output=True, text=True, env=env, **kw)


def test_discovered_through_its_entry_point(installed):
    out = crmrules(installed, "plugins")
    assert "chat: push_action, register_actions, register_settings" in out.stdout, out.stdout + out.stderr
    bare = crmrules(dict(installed, PYTHONPATH=""), "plugins")
    assert "chat:" not in bare.stdout


def test_rules_are_checked_against_the_plugins_model(installed, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("rules:\n  - id: a\n    when: {event: x}\n    then:\n      - chat_notify: {channel: '#sales', text: '{{ lead.name }} 연락 필요'}\n", encoding="utf-8")
    assert crmrules(installed, "check", str(good)).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: a\n    when: {event: x}\n    then:\n      - chat_notify: {chanel: '#sales'}\n", encoding="utf-8")
    out = crmrules(installed, "check", str(bad))
    assert out.returncode == 1
    assert f"{bad}:5:22: rules[0].then[0].chat_notify.text: Field required" in out.stderr, out.stderr
    assert f"{bad}:5:23: rules[0].then[0].chat_notify.chanel: Extra inputs are not permitted" in out.stderr


def test_its_options_are_checked_against_its_settings_model(installed, tmp_path):
    pack = tmp_path / "pack.yaml"
    pack.write_text("rules:\n  - id: a\n    when: {event: x}\n    then: [{chat_notify: {text: 연락}}]\n", encoding="utf-8")
    config = tmp_path / "crmrules.yaml"
    config.write_text(f"rules: [{pack}]\nplugins:\n  chat: {{timeout: 2}}\n", encoding="utf-8")
    assert crmrules(installed, "--config", str(config), "check").returncode == 0
    config.write_text(f"rules: [{pack}]\nplugins:\n  chat: {{timeout: -1, timout: 2}}\n", encoding="utf-8")
    out = crmrules(installed, "--config", str(config), "check")
    assert out.returncode == 1
    assert "plugins.chat.timeout: Input should be greater than 0" in out.stderr, out.stderr
    assert "plugins.chat.timout: not an option of the chat plugin; did you mean 'timeout'?" in out.stderr


def test_its_action_runs(installed, tmp_path):
    received = []
    hook = Flask("chat")

    @hook.post("/hook")
    def take():
        received.append((request.get_json(), request.headers.get("Idempotency-Key")))
        return "ok"

    pack = tmp_path / "p.yaml"
    pack.write_text(textwrap.dedent("""
        rules:
          - id: hot
            when: {event: page_view}
            then:
              - chat_notify: {channel: "#sales", text: "{{ lead.name }}님이 가격 페이지를 봤습니다"}
    """), encoding="utf-8")
    script = textwrap.dedent(f"""
        import datetime as dt
        from crmrules import Pipeline, SQLiteStore, load_pack
        from crmrules.plugins import action_types, get_plugin_manager
        from crmrules.models import Event
        store = SQLiteStore({str(tmp_path / 's.sqlite')!r})
        p = Pipeline(store, [load_pack({str(pack)!r}, action_types=action_types())], custom_actions=action_types())
        p.replay([Event(id="1", type="record_update", occurred_at="2026-03-02T09:00:00+09:00",
                        subject={{"ids": {{"email": "kim@example.com"}}}}, properties={{"first_name": "유진", "last_name": "김"}}),
                  Event(id="2", type="page_view", occurred_at="2026-03-02T09:05:00+09:00",
                        subject={{"ids": {{"email": "kim@example.com"}}}})])
        [(item, _)] = store.claim_due(now=2e9)
        print(get_plugin_manager().hook.push_action(target="chat", item=item, settings={{}}))
    """)
    with serve(hook) as server:
        env = dict(installed, CRMRULES_CHAT_WEBHOOK_URL=f"{server.url}/hook")
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "chat 200"
    assert received[0][0] == {"text": "김유진님이 가격 페이지를 봤습니다", "channel": "#sales"}
    assert len(received[0][1]) == 32
