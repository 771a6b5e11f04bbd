"""Message text with {{ lead.first_name }}: Jinja2 in its sandbox, so a rule can read only what it is given."""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateSyntaxError, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

_ENV = ImmutableSandboxedEnvironment(autoescape=select_autoescape(default_for_string=False), keep_trailing_newline=False)


def syntax_error(text: str) -> str | None:
    """The template's syntax problem as a sentence, or None."""

    try:
        _ENV.parse(text)
    except TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return None


def render(text: str, context: dict[str, Any]) -> str:
    """Render one string; plain strings pass through untouched (and cheaply)."""

    if "{{" not in text and "{%" not in text:
        return text
    return _ENV.from_string(text).render(context)


def render_value(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value
