"""The example third-party plugin (examples/crmrules-chat, the template of docs/plugins.md), installed with pip
from a copy, found through its entry point, and run by a real `crmrules serve`: a chat command posted over HTTP
is ingested from its source, and the rule it triggers pushes a chat_notify to a local HTTP stand-in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from flask import Flask, request

from tests.support.servers import serve
from tests.support.sidecar import start_sidecar
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
SECRET = "chat-secret-7f3a"


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
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("chat (module crmrules_chat):")), None)
    assert line is not None, out.stdout + out.stderr
    for provided in ("settings plugins.chat", "source chat (trusted, webhooks)", "target chat",
                     "action chat_notify"):
        assert provided in line, line
    bare = crmrules(dict(installed, PYTHONPATH=""), "plugins")
    assert "chat (" not in bare.stdout


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


PACK = """
rules:
  - id: taken-in-chat
    when: {event: chat_claimed}
    then:
      - chat_notify: {channel: "#sales", text: "{{ event.by }}님이 {{ event.lead }} 담당입니다"}
"""


def test_a_chat_command_is_ingested_and_its_rule_pushes_to_the_chat(installed, tmp_path):
    received: list[tuple[dict, str | None]] = []
    lock = threading.Lock()
    chat = Flask("chat-stand-in")

    @chat.post("/incoming")
    def incoming():
        with lock:
            received.append((request.get_json(), request.headers.get("Idempotency-Key")))
        return "ok"

    pack = tmp_path / "pack.yaml"
    pack.write_text(textwrap.dedent(PACK), encoding="utf-8")
    config = {"rules": [str(pack)], "targets": {"chat_notify": "chat"}, "plugins": {"chat": {"timeout": 2}}}
    with serve(chat) as server:
        env = {"PYTHONPATH": installed["PYTHONPATH"], "CRMRULES_LOAD_PLUGINS": "chat",
               "CRMRULES_CHAT_SECRET": SECRET, "CRMRULES_CHAT_WEBHOOK_URL": f"{server.url}/incoming"}
        with start_sidecar(tmp_path / "sidecar", config, env=env) as sidecar:
            command = {"id": "msg-1001", "command": "claimed", "lead": "kim@example.com", "by": "유진"}
            assert sidecar.post("/hooks/chat/events", command, {"X-Chat-Secret": "guess"})[0] == 401
            status, _, body = sidecar.post("/hooks/chat/events", command, {"X-Chat-Secret": SECRET})
            assert (status, json.loads(body)) == (200, {"accepted": 1, "duplicates": 0}), body
            again = sidecar.post("/hooks/chat/events", command, {"X-Chat-Secret": SECRET})
            assert json.loads(again[2]) == {"accepted": 0, "duplicates": 1}  # the chat redelivered it
            assert sidecar.post("/hooks/chat/events", {"command": "lost"}, {"X-Chat-Secret": SECRET})[0] == 400

            wait_until(lambda: received, what="the chat_notify push")
            status, _, doc = sidecar.get("/openapi.json")
            operation = json.loads(doc)["paths"]["/hooks/chat/events"]["post"]
            assert operation["operationId"] == "chat_command"
            wait_until(lambda: b"crmrules_chat_messages_sent_total 1.0" in sidecar.get("/metrics")[2],
                       what="the plugin's own counter")
            assert sidecar.stop() == 0, sidecar.log()
    [(message, key)] = received  # once, though the command came twice
    assert message == {"text": "유진님이 kim@example.com 담당입니다", "channel": "#sales"}
    assert key is not None and len(key) == 32
