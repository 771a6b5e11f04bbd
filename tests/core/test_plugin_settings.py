"""Plugin options in crmrules.yaml are checked against the models the plugins declare (`register_settings`),
by `crmrules check` and before `crmrules serve` binds a port: a typo surfaces at once, not at the first webhook.
Real subprocesses of the CLI with the installed plugins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sidecar" / "crmrules.yaml"


def deployment(tmp_path: Path, **plugin_sections: dict) -> Path:
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config["rules"] = [str(ROOT / "rules")]
    config["store"] = str(tmp_path / "crmrules.sqlite")
    config["plugins"].update(plugin_sections)
    path = tmp_path / "crmrules.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def crmrules(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crmrules.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=config.parent)


def test_the_shipped_example_is_clean(tmp_path: Path) -> None:
    result = crmrules(deployment(tmp_path), "check")
    assert result.returncode == 0, result.stderr
    assert "plugins." not in result.stderr


def test_a_misspelt_option_and_a_wrong_type_are_named_with_their_key(tmp_path: Path) -> None:
    config = deployment(tmp_path, hubspot={"portal_ids": ["삼성"], "tags_propety": "crmrules_tags"},
                        salesforce={"organization_id": "12345"})
    result = crmrules(config, "check")
    assert result.returncode == 1
    assert "plugins.hubspot.tags_propety: not an option of the hubspot plugin; did you mean 'tags_property'?" \
        in result.stderr
    assert "plugins.hubspot.portal_ids.0:" in result.stderr
    assert "plugins.salesforce.organization_id:" in result.stderr
    assert "3 error(s) in the plugin settings" in result.stderr


def test_a_section_no_plugin_declares_only_warns(tmp_path: Path) -> None:
    result = crmrules(deployment(tmp_path, web_trackr={"write_keys": ["k"]}), "check")
    assert result.returncode == 0, result.stderr
    assert "plugins.web_trackr: no loaded plugin declares these options" in result.stderr
    assert "did you mean 'web_tracker'?" in result.stderr


def test_serve_refuses_to_start_with_bad_options(tmp_path: Path) -> None:
    config = deployment(tmp_path, web_tracker={"write_keys": "wk_not_a_list", "rate_burst": 0})
    result = crmrules(config, "serve", "--port", "0", timeout=60)
    assert result.returncode == 1
    assert "plugins.web_tracker.write_keys:" in result.stderr and "plugins.web_tracker.rate_burst:" in result.stderr
    assert not (tmp_path / "crmrules.sqlite").exists()  # refused before the store was opened
