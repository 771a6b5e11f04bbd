"""Issue 16, "works outside the clone": after a plain (non-editable) `pip install .`, from an empty folder,
`crmrules demo` shows the ranking, `crmrules serve` starts on the embedded default (shipped packs, a store in that
folder, the web tracker with the development write key it prints) and stops on SIGTERM, and `crmrules init`
writes a crmrules.yaml that `crmrules check` accepts.

Finding: on main a plain `pip install .` shipped neither the packs nor the demo data (the demo looked for them
beside the installed package and broke), and `crmrules serve` in an empty folder ended in `rules: no such file
or folder`.

How it installs, offline and in seconds: the project's files are copied to a temporary folder (so the build
writes nothing into the checkout), a wheel is built from the copy with this environment's setuptools
(`pip wheel --no-deps --no-build-isolation`), and installed with `pip --python` into a fresh venv made without
pip. Only then does that venv get a .pth naming this environment's site folders, so the dependencies (Flask,
durable-rules, ...) come from here while crmrules itself is the installed wheel: the test checks that the
package and the demo data it runs are inside the new venv, not the checkout.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.sidecar import free_port

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["pyproject.toml", "README.md", "core", "plugins", "rules", "examples"]
JUNK = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", "*.sqlite*", "*.plugins", "node_modules",
                              ".*")


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8", timeout=timeout)


def _clean_env() -> dict[str, str]:
    """No settings, plugin filters or import paths of the test run leak into the installed program."""

    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("CRMRULES_")}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with crmrules installed from a wheel built from a copy of this checkout; its bin/ folder."""

    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    source.mkdir()
    for name in SHIPPED:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=JUNK)
        else:
            shutil.copy2(path, source / name)
    env = _clean_env()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(base / "dist"),
                  str(source)], base, env)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next((base / "dist").glob("crmrules-*.whl"))

    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base, env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    done = _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)], base, env)
    assert done.returncode == 0, done.stdout + done.stderr

    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], base, env)
    here = sorted({str(dist.locate_file("")) for dist in importlib.metadata.distributions()})
    (Path(site.stdout.strip()) / "zz_test_dependencies.pth").write_text("\n".join(here) + "\n", encoding="utf-8")

    where = _run([str(python), "-c", "import crmrules; print(crmrules.__file__)"], base, env)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).resolve().is_relative_to(venv.resolve()), "not the installed copy"
    return venv / "bin"


def test_demo_from_an_empty_folder_shows_the_ranking(installed: Path, tmp_path: Path) -> None:
    out = _run([str(installed / "crmrules"), "demo"], tmp_path, _clean_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "8 packs (62 rules)" in out.stdout
    ranking = out.stdout.split("우선순위 리드 / prioritised leads", 1)[1].split("리드별 조치", 1)[0]
    first_two = re.findall(r"^\s*[12]\s+(\S+)", ranking, re.MULTILINE)
    assert sorted(first_two) == ["김민재", "김유진"], ranking
    events = re.search(r"^  events: (.+)$", out.stdout, re.MULTILINE)
    assert events and Path(events.group(1)).resolve().is_relative_to(installed.parent.resolve()), out.stdout
    assert list(tmp_path.iterdir()) == []  # the demo's store is temporary: nothing left in the folder


def test_serve_from_an_empty_folder_runs_the_embedded_default(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    out_file = tmp_path / "serve.out"
    with open(out_file, "wb") as out, open(tmp_path / "serve.err", "wb") as err:
        proc = subprocess.Popen([str(installed / "crmrules"), "serve", "--port", str(port)], cwd=tmp_path,
                                env=_clean_env(), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        text = _wait_for(out_file, "crmrules: serving on", proc)
        assert _get(url + "/healthz")[0] == 200
        assert "embedded default" in text and "crmrules init" in text
        assert "the 8 packs shipped with crmrules (62 rules)" in text
        assert "nothing goes to a CRM" in text
        key = re.search(r"development write key (wk_dev_[\w-]+)", text)
        assert key, text
        assert f'<script src="{url}/v1/crmrules.js" data-write-key="{key.group(1)}"' in text
        event = {"anonymousId": "anon-1", "event": "Product Viewed", "properties": {"product": "A"}}
        assert _post(url + "/v1/track", {**event, "writeKey": key.group(1)}) == (200, 1)
        assert _post(url + "/v1/track", {**event, "writeKey": "wk_guessed"})[0] == 401  # the key is what opens it
        assert (tmp_path / "crmrules.sqlite").is_file()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    log = out_file.read_text(encoding="utf-8") + (tmp_path / "serve.err").read_text(encoding="utf-8")
    assert code == 0, log
    assert "crmrules: stopped" in log


def test_init_writes_a_file_that_check_accepts_and_keeps_it(installed: Path, tmp_path: Path) -> None:
    crmrules, env = str(installed / "crmrules"), _clean_env()
    wrote = _run([crmrules, "init"], tmp_path, env)
    assert wrote.returncode == 0, wrote.stderr
    config = tmp_path / "crmrules.yaml"
    text = config.read_text(encoding="utf-8")
    checked = _run([crmrules, "check"], tmp_path, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok: 8 pack(s), 62 rule(s)" in checked.stdout
    assert checked.stderr == ""  # not even a warning
    again = _run([crmrules, "init"], tmp_path, env)
    assert again.returncode == 1 and "--force" in again.stderr
    assert config.read_text(encoding="utf-8") == text


def _wait_for(file: Path, marker: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = file.read_text(encoding="utf-8")
        if marker in text:
            return text
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}:\n{text}")
        time.sleep(0.05)
    raise AssertionError(f"no {marker!r} within {timeout:g}s:\n{file.read_text(encoding='utf-8')}")


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def _post(url: str, body: dict) -> tuple[int, int | None]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())["accepted"]
    except urllib.error.HTTPError as exc:
        return exc.code, None
