"""Run `crmrules serve` as a real subprocess for integration tests, so that a test can kill -9 it.

    sidecar = start_sidecar(tmp_path, {"rules": [PACK], "targets": {"task": "testhook"},
                                       "plugins": {"testhook": {"url": target.url}}},
                            env={"CRMRULES_PLUGINS_PATH": str(TESTHOOK)})
    requests.post(sidecar.url + "/hooks/test", ...)
    sidecar.kill(); sidecar.restart()        # same port, same store
    sidecar.stop()                           # SIGTERM, waits for a clean exit

The config is written to `tmp_path/crmrules.yaml`; the store defaults to `tmp_path/crmrules.sqlite`. The
process's stdout and stderr go to files in tmp_path (`.log()` reads them), so a chatty server never blocks on a
full pipe. Only loopback is used.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sidecar:
    def __init__(self, folder: Path, config_path: Path, store_path: Path, env: dict[str, str], port: int,
                 args: list[str]):
        self.folder = folder
        self.config_path = config_path
        self.store_path = store_path
        self.env = env
        self.port = port
        self.args = args
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # -------------------------------------------------------------- lifecycle

    def start(self, timeout: float = READY_TIMEOUT) -> "Sidecar":
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the sidecar is already running")
        self.starts += 1
        out = open(self.folder / f"sidecar.{self.starts}.out", "wb")
        err = open(self.folder / f"sidecar.{self.starts}.err", "wb")
        command = [sys.executable, "-m", "crmrules.cli", "--config", str(self.config_path), "serve",
                   "--host", "127.0.0.1", "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(command, stdout=out, stderr=err, env=self.env, cwd=self.folder,
                                     stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the sidecar exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = exc.read().decode("utf-8", "replace")
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = str(exc)
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"the sidecar was not ready in {timeout:g}s ({last}):\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, and wait for a clean exit; returns the exit code."""

        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the sidecar did not stop within {timeout:g}s of SIGTERM:\n{self.log()}") from None

    def kill(self) -> None:
        """kill -9: no clean-up at all, as a crash or an OOM kill."""

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self, timeout: float = READY_TIMEOUT) -> "Sidecar":
        """Stop if running (cleanly), then start again on the same port with the same config and store."""

        self.stop()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -------------------------------------------------------------- looking in

    def log(self) -> str:
        parts = []
        for n in range(1, self.starts + 1):
            for stream in ("out", "err"):
                path = self.folder / f"sidecar.{n}.{stream}"
                if path.exists():
                    parts.append(f"--- start {n} std{stream} ---\n" + path.read_text("utf-8", "replace"))
        return "\n".join(parts)

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        return request("GET", self.url + path)

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None,
             data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        raw = data if data is not None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        return request("POST", self.url + path, raw, {"Content-Type": "application/json", **(headers or {})})

    def __enter__(self) -> "Sidecar":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.running:
            try:
                self.stop()
            except AssertionError:
                pass


def request(method: str, url: str, data: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange with the stdlib: (status, headers, body); error statuses are answers, not raised."""

    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def start_sidecar(tmp_path: Path, config: dict[str, Any], env: dict[str, str] | None = None,
                  args: list[str] | None = None, timeout: float = READY_TIMEOUT) -> Sidecar:
    """Write `tmp_path/crmrules.yaml` from `config`, start `crmrules serve` on a free port, wait for /readyz."""

    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = dict(config)
    config.setdefault("store", str(tmp_path / "crmrules.sqlite"))
    config_path = tmp_path / "crmrules.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    store = Path(config["store"])
    store = store if store.is_absolute() else tmp_path / store
    full_env = dict(os.environ)
    full_env.pop("CRMRULES_CONFIG", None)
    full_env.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    for attempt in range(3):  # another process may take the free port between our probe and the bind
        sidecar = Sidecar(tmp_path, config_path, store, full_env, free_port(), list(args or []))
        try:
            return sidecar.start(timeout)
        except RuntimeError:
            if attempt == 2 or "address already in use" not in sidecar.log().lower():
                raise
    raise AssertionError("unreachable")
