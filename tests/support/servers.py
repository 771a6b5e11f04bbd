"""Run a WSGI app (e.g. a Flask stand-in) on loopback in a background thread.

Why: tests drive the *real* vendor client libraries over real HTTP, so the
stand-ins must listen on a real socket. Everything binds to 127.0.0.1 on a
free port chosen by the OS; nothing here ever leaves the machine.

Usage::

    with serve(app) as server:          # or: server = serve(app); ...; server.stop()
        requests.get(server.url + "/ping")

As a pytest fixture::

    @pytest.fixture
    def hubspot_server():
        with serve(create_app()) as server:
            yield server
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Callable

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["RunningServer", "serve"]


class _QuietHandler(WSGIRequestHandler):
    """Drop the per-request access log line; keep error logging."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class RunningServer:
    """A started server: ``url`` is ``http://127.0.0.1:<port>`` (no trailing slash)."""

    def __init__(self, server: BaseWSGIServer, app: Any, host: str) -> None:
        self._server = server
        self.app = app
        self.host: str = host
        self.port: int = int(server.socket.getsockname()[1])
        self.url: str = f"http://{self.host}:{self.port}"
        self._on_stop: list[Callable[[], None]] = []
        self._stopped = False
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"standin-server-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` before shutdown (e.g. to cut short injected delays)."""
        self._on_stop.append(callback)

    def stop(self) -> None:
        """Stop accepting requests and close the socket. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for callback in self._on_stop:
            callback()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(app: Any, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start ``app`` on ``host`` (loopback only) and return the running server.

    ``port=0`` lets the OS pick a free port. The server is threaded so a
    deliberately slow response does not block other requests. If the app has a
    stand-in state with ``cancel_delays()`` (``app.config["STATE"]``), stopping
    the server releases any injected delay first.
    """
    if not host.startswith("127."):
        raise ValueError(f"stand-in servers bind to IPv4 loopback (127.x.x.x) only, not {host!r}")
    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    running = RunningServer(server, app, host)
    state = getattr(app, "config", {}).get("STATE")
    cancel = getattr(state, "cancel_delays", None)
    if callable(cancel):
        running.on_stop(cancel)
    return running
