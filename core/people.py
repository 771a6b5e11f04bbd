"""How a person's record reads to us: the name we call them by, and whether Korean rules apply to them.

Shared by the decide stage (templates, ad labels, quiet nights), the store (finding a lead by name) and the
command line (explain, demo), so it sits below all of them.
"""

from __future__ import annotations

from typing import Any

KOREA = ("KR", "KOR", "KOREA", "SOUTH KOREA", "대한민국", "한국")


def display_name(props: dict[str, Any]) -> str:
    """Korean names read family name first and without a space (김유진); others "First Last"."""

    if props.get("name"):
        return str(props["name"])
    first = str(props.get("first_name") or props.get("firstname") or "").strip()
    last = str(props.get("last_name") or props.get("lastname") or "").strip()
    if first and last and all("\uac00" <= ch <= "\ud7a3" for ch in first + last):
        return last + first
    return " ".join(p for p in (first, last) if p)


def in_korea(props: dict[str, Any]) -> bool:
    """The record says the person is in Korea (the Network Act's ad label and night rule then apply)."""

    return str(props.get("country", "")).strip().upper() in KOREA
