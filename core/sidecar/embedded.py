"""`crmrules serve` with no crmrules.yaml: the embedded default, made usable and said out loud.

Why it exists: someone who has just run `pip install crmrules` and `crmrules serve` in an empty folder should get
a sidecar that takes website events at once (the shipped packs, a store in that folder, the web tracker with a
development write key) and a paragraph saying what runs and how to change it, instead of an error about a
missing rules folder. Nothing is pushed to a CRM: that needs secrets, so only on-site messages are routed
(`config.EMBEDDED_TARGETS`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Collection
from pathlib import Path
from typing import Any

from .. import shipped
from ..config import Settings
from ..store.protocols import MetaStore

TRACKER = "web_tracker"
DEV_KEY_META = "web_tracker.development_write_key"
"""Where the development write key is kept: in the store, so it stays the same across restarts of one folder."""


def development_write_key(store: MetaStore) -> str:
    """The store's development write key, made on first use. Write keys are public (they route, they prove
    nothing), so keeping it in the store is fine."""

    key = store.get_meta(DEV_KEY_META)
    if not key:
        key = "wk_dev_" + secrets.token_urlsafe(12)
        store.set_meta(DEV_KEY_META, key)
    return key


def prepare(settings: Settings, store: MetaStore, targets: Collection[str]) -> str | None:
    """Give the web tracker (when loaded) the development write key, in `settings` itself; returns the key."""

    if TRACKER not in targets:  # filtered out (CRMRULES_LOAD_PLUGINS) or not installed
        return None
    key = development_write_key(store)
    options = settings.plugins.setdefault(TRACKER, {})
    options["write_keys"] = [key]
    return key


def describe(settings: Settings, packs: list[Any], url: str, write_key: str | None, created: bool) -> str:
    """The paragraph printed before "serving on": what runs, where its data goes, how to configure it."""

    rules = sum(len(p.rules) for p in packs)
    if settings.rules == [str(shipped.packs_folder())]:
        where = f"the {len(packs)} packs shipped with crmrules ({rules} rules), read from {settings.rules[0]}"
    else:
        where = f"{len(packs)} pack(s) ({rules} rules) from {', '.join(map(_shown, settings.rules))}"
    lines = [
        "crmrules: no crmrules.yaml here (and no --config, no $CRMRULES_CONFIG), so this runs the embedded default:",
        f"  rules    {where}",
        f"  store    {_shown(settings.store)} ({'created now' if created else 'kept from before'}: state, "
        "decisions, the outbox)",
    ]
    if write_key is None:
        lines.append("  tracker  off: the web_tracker plugin is not loaded")
    else:
        lines += [
            f"  tracker  on, development write key {write_key} (made once, kept in the store); on a page:",
            f'           <script src="{url}/v1/crmrules.js" data-write-key="{write_key}" defer></script>',
            f"           or POST {url}/v1/track with the key as writeKey (Segment's HTTP API)",
        ]
    lines += [
        "  pushes   on-site messages only; nothing goes to a CRM (that needs its secrets): tasks, tags, e-mails",
        "           and the rest wait as dead letters (`crmrules outbox list --status dead`) until `targets:`",
        "           routes them, then `crmrules outbox retry` sends them",
        "  next     `crmrules init` writes a commented crmrules.yaml here to configure all of this; edit it and",
        "           start `crmrules serve` again",
    ]
    return "\n".join(lines)


def _shown(path: str) -> str:
    """A path as the user can find it from here: relative when under the current folder."""

    absolute = Path(path).resolve()
    try:
        return "./" + str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        return os.path.normpath(path)
