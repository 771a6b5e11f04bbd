"""Issue 16, "works outside the clone", the parts that need no install (tests/test_install.py does the install):
the embedded default with no crmrules.yaml, `shipped:` in `rules:`, the development write key, `crmrules init`.

Finding: with no crmrules.yaml, crmrules ran `rules` from the current folder and failed with `rules: no such file
or folder` anywhere but in a clone; there was no `crmrules init` to start a crmrules.yaml from.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from crmrules import open_store, plugins, shipped
from crmrules.cli import cli
from crmrules.config import EMBEDDED_TARGETS, Settings, load_settings
from crmrules.sidecar import embedded

SHIPPED_PACKS = ["issues-relationship", "lead-scoring", "loyalty", "onsite-offers", "pipeline-health",
                 "proposal-contract", "retention-growth", "segmentation"]


@pytest.fixture(autouse=True)
def _no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CRMRULES_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def test_no_crmrules_yaml_in_an_empty_folder_runs_the_shipped_packs_and_pushes_nothing_to_a_crm(tmp_path):
    settings = load_settings()

    assert settings.embedded
    assert settings.rules == [str(shipped.packs_folder())]
    assert shipped.pack_names() == SHIPPED_PACKS
    assert settings.store == "crmrules.sqlite"
    assert settings.targets == EMBEDDED_TARGETS == {"message.onsite": "web_tracker"}
    for action_type in ("task", "tag", "score", "set", "webhook"):
        assert settings.target_for(action_type) is None, action_type
    assert settings.target_for("message", "email") is None


def test_a_rules_folder_here_wins_over_the_shipped_packs(tmp_path):
    """A clone, or packs of one's own: ./rules is what runs, as before."""
    (tmp_path / "rules").mkdir()
    assert load_settings().rules == ["rules"]


def test_a_crmrules_yaml_is_not_the_embedded_default(tmp_path):
    (tmp_path / "crmrules.yaml").write_text("rules: [rules]\n", encoding="utf-8")
    settings = load_settings()
    assert not settings.embedded and settings.targets == {}
    assert not Settings().embedded


def test_shipped_entries_in_rules_name_installed_packs(tmp_path):
    (tmp_path / "crmrules.yaml").write_text("rules: ['shipped:*', 'shipped:lead-*', mine]\n", encoding="utf-8")
    assert load_settings().rules == [str(shipped.packs_folder()), str(shipped.packs_folder() / "lead-scoring"),
                                     "mine"]


def test_a_shipped_entry_that_matches_nothing_says_what_ships(tmp_path):
    (tmp_path / "crmrules.yaml").write_text("rules: ['shipped:lead-scorin']\n", encoding="utf-8")
    with pytest.raises(SystemExit) as stop:
        load_settings()
    message = str(stop.value)
    assert message.startswith("crmrules.yaml: rules: 'shipped:lead-scorin' matches no shipped pack")
    assert "lead-scoring" in message and "`shipped:*`" in message


def test_the_development_write_key_is_made_once_and_kept_in_the_store(tmp_path):
    store = open_store(str(tmp_path / "crmrules.sqlite"))
    settings = load_settings()
    key = embedded.prepare(settings, store, ["web_tracker"])
    store.close()
    assert key is not None and re.fullmatch(r"wk_dev_[\w-]{16}", key)
    assert settings.plugins == {"web_tracker": {"write_keys": [key]}}

    reopened = open_store(str(tmp_path / "crmrules.sqlite"))
    again = load_settings()
    assert embedded.prepare(again, reopened, ["web_tracker"]) == key
    reopened.close()

    other = open_store(str(tmp_path / "other.sqlite"))
    assert embedded.development_write_key(other) != key  # one per store, not one per machine
    other.close()


def test_without_the_web_tracker_no_key_is_made(tmp_path):
    store = open_store(str(tmp_path / "crmrules.sqlite"))
    settings = load_settings()
    assert embedded.prepare(settings, store, ["hubspot"]) is None
    assert settings.plugins == {} and store.get_meta(embedded.DEV_KEY_META) is None
    store.close()


def test_init_refuses_to_overwrite_unless_forced(tmp_path):
    runner = CliRunner()
    first = runner.invoke(cli, ["init"])
    assert first.exit_code == 0, first.output
    config = tmp_path / "crmrules.yaml"
    written = config.read_text(encoding="utf-8")

    config.write_text("store: mine.sqlite\n", encoding="utf-8")
    refused = runner.invoke(cli, ["init"])
    assert refused.exit_code == 1 and "--force" in refused.output
    assert config.read_text(encoding="utf-8") == "store: mine.sqlite\n"

    forced = runner.invoke(cli, ["init", "--force"])
    assert forced.exit_code == 0
    key = re.compile(r"wk_[\w-]{16}")
    assert key.sub("KEY", config.read_text(encoding="utf-8")) == key.sub("KEY", written)


def test_init_writes_where_config_points(tmp_path):
    result = CliRunner().invoke(cli, ["--config", "deploy/crmrules.yaml", "init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "deploy" / "crmrules.yaml").is_file()
    assert "crmrules --config deploy/crmrules.yaml check" in result.output
    assert CliRunner().invoke(cli, ["--config", "deploy/crmrules.yaml", "check"]).exit_code == 0


def test_the_starter_file_has_every_section_and_its_commented_plugin_options_are_valid(tmp_path):
    """Uncommenting the HubSpot and Salesforce blocks gives options their plugins accept: the comments do not lie."""
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    text = (tmp_path / "crmrules.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert set(data) == set(Settings.model_fields)  # every setting a deployment has is shown
    assert set(data["retention"]) >= {"events", "event_keys", "decisions", "outbox"}
    assert re.fullmatch(r"wk_[\w-]{16}", data["plugins"]["web_tracker"]["write_keys"][0])

    lines = text.splitlines()
    start = lines.index("  # hubspot:                      # secrets: HUBSPOT_CLIENT_SECRET (webhook signatures), "
                        "HUBSPOT_ACCESS_TOKEN")
    end = next(i for i, line in enumerate(lines) if line.startswith("retention:"))
    uncommented = [line.replace("  # ", "  ", 1) for line in lines[start:end]]
    opened = yaml.safe_load("\n".join(lines[:start] + uncommented + lines[end:]))
    assert set(opened["plugins"]) == {"web_tracker", "hubspot", "salesforce"}
    assert {"public_url", "portal_ids", "poll_every"} <= set(opened["plugins"]["hubspot"])
    assert {"organization_id", "timezone", "poll_every"} <= set(opened["plugins"]["salesforce"])
    problems, unchecked = plugins.check_settings(opened["plugins"])
    assert problems == [] and unchecked == []
