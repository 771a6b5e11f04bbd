"""crmrules: a sales and marketing playbook as YAML rules, evaluated on event time beside your CRM.

The data path, one module or folder each: receiver/ (webhooks in) → store/ (inbox) → identity → decide/
(compile, match, guards, actions, decision records) → store/ (outbox) → outbox/ (dispatcher) → plugins push;
sidecar/ runs them in one process (`crmrules serve`).
"""

from .clock import ManualClock
from .hookspecs import hookimpl
from .language import PackError, RuleError, load_pack, load_packs
from .models import Decision, Event, OutboxItem
from .pipeline import Pipeline
from .store import SQLiteStore, open_store

__all__ = ["Decision", "Event", "ManualClock", "OutboxItem", "PackError", "Pipeline", "RuleError", "SQLiteStore",
           "hookimpl", "load_pack", "load_packs", "open_store"]
