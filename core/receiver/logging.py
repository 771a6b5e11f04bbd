"""Logs without personal data: emails and phone numbers are masked before any handler writes a record.

Why a filter on handlers (not on a logger): a filter on a logger only sees records logged to that very logger,
while a handler's filter sees everything that reaches it, the plugins' and waitress' records included. The
message, its arguments and a traceback's text are all masked, since exception messages quote payloads.

Masking keeps what helps debugging: the first letter and the domain of an email (`k***@example.com`) and the
last two digits of a phone number (`***-**78`). Dates, times, ids and epoch seconds are left alone.

Secrets live only in the environment (`NAME` or the file named by `NAME_FILE`). Whatever quotes one by accident
(an exception that prints a request's headers, a URL with a token) is rewritten to `[secret NAME]`: the values
of variables whose names say secret, token, password, key or session are collected when logging is configured.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

EMAIL = re.compile(r"(?<![\w.+-])([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")

# A run of digits with the separators phone numbers use; `_phone` decides whether the run is one.
PHONE_CANDIDATE = re.compile(r"(?<![\w+:./-])(\+?\(?\d[\d ().-]{6,22}\d)(?![\w:/]|\.\d|-\d)")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}")
_DOTTED = re.compile(r"^\+?\(?\d{1,4}\)?(?:[ .]\d{2,4})?[ .]?\d{3,4}\.\d{4}$")
_GROUPED = re.compile(r"^\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{1,4}\)?){1,5}$")


def _phone(match: re.Match[str]) -> str:
    text = match.group(1)
    digits = re.sub(r"\D", "", text)
    if not 8 <= len(digits) <= 15 or _DATE.search(text):
        return text
    if "." in text and not _DOTTED.match(text):  # decimals, IP addresses, versions
        return text
    separated = bool(re.search(r"[ ().-]", text))
    if text.startswith("+"):
        looks_like_phone = True  # E.164 or written international
    elif separated:
        looks_like_phone = bool(_GROUPED.match(text)) and len(re.split(r"[ ().-]+", text.strip("()"))) >= 2
        looks_like_phone = looks_like_phone and 9 <= len(digits) <= 13
    else:
        looks_like_phone = digits.startswith("0") and 9 <= len(digits) <= 11  # 01012345678 (KR mobile)
    return f"***-**{digits[-2:]}" if looks_like_phone else text


SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY|STORE_KEY|SESSION_ID)$")
_secrets: dict[str, str] = {}  # value → variable name


def remember_secrets(environ: dict[str, str] | None = None) -> None:
    """Collect the secrets of the environment (and of NAME_FILE files) so that logs never carry them."""

    environ = dict(os.environ if environ is None else environ)
    for name, value in environ.items():
        base = name[:-5] if name.endswith("_FILE") else name
        if not SECRET_NAME.search(base.upper()):
            continue
        if name.endswith("_FILE"):
            try:
                value = Path(value).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                continue
        if value and len(value) >= 6:  # a short value would mask ordinary words
            _secrets[value] = base


def mask_secrets(text: str) -> str:
    for value, name in _secrets.items():
        if value in text:
            text = text.replace(value, f"[secret {name}]")
    return text


def mask_pii(text: str) -> str:
    """`text` with emails and phone numbers masked."""

    if not text:
        return text
    text = EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return PHONE_CANDIDATE.sub(_phone, text)


class PiiFilter(logging.Filter):
    """Rewrites each record's message (and traceback text) with personal data and secrets masked; drops
    nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw parts, masked
            message = f"{record.msg} {record.args}"
        record.msg = mask_pii(mask_secrets(message))
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_pii(mask_secrets(record.exc_text))
        if record.stack_info:
            record.stack_info = mask_pii(mask_secrets(record.stack_info))
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr with PII and secrets masked; also masks on any handler the root logger already has."""

    remember_secrets()
    root = logging.getLogger()
    if not root.handlers:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(stream)
    for handler in root.handlers:
        if not any(isinstance(f, PiiFilter) for f in handler.filters):
            handler.addFilter(PiiFilter())
    root.setLevel(level)
