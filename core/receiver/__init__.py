"""What answers HTTP: the Flask receiver (`app`), its Prometheus metrics and OpenAPI description, and the
PII-masking log filter. The process around it (waitress, the worker thread, signals) is `crmrules.sidecar`."""

from .app import create_app
from .metrics import Metrics

__all__ = ["Metrics", "create_app"]
