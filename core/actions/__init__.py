"""Action types: the one table of what a rule's `then:` can say, built in or a plugin's (see `types.py`)."""

from __future__ import annotations

from .builtin import BUILTIN_ACTIONS
from .types import ActionType, BuildEnv, Expectable, FieldReader, as_action_type, field_matches, model_action


def builtin_table() -> dict[str, ActionType]:
    """The built-in types alone, for callers that load packs without plugins (the plugin table includes them)."""

    return {t.name: t for t in BUILTIN_ACTIONS}


__all__ = ["BUILTIN_ACTIONS", "ActionType", "BuildEnv", "Expectable", "FieldReader", "as_action_type", "builtin_table",
           "field_matches", "model_action"]
