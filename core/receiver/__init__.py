"""The sidecar around the pipeline: the Flask receiver (`app`), its metrics and PII-masking log filter, the
worker thread that evaluates and dispatches (`worker`), and `serve` (`server`) that runs them together."""

from .app import create_app
from .metrics import Metrics
from .worker import Poller, Worker

__all__ = ["Metrics", "Poller", "Worker", "create_app"]
