"""The web tracker's options: `plugins: {web_tracker: {...}}` in crmrules.yaml.

Every key has a default except `write_keys`; without write keys every request is answered 401. (With no
crmrules.yaml at all, `crmrules serve` gives the tracker a development write key, `wk_dev_…`, kept in the store and
printed at start: see docs/architecture.md, "The sidecar".)
Write keys are public (they sit in every page's source): they say which site sent an event, they prove nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crmrules.api import validate_settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

LOOKUP_KINDS = ("anonymous_id", "user_id")


def seconds(value: Any) -> float:
    """`30`, `"30s"`, `"15m"`, `"24h"`, `"30d"`, `"2w"` → seconds."""

    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 15m or 30d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 15m or 30d")
    return float(match.group(1)) * _UNITS[match.group(2)]


class TrackerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    write_keys: list[str] = Field(default_factory=list, description="accepted write keys (public, they route)")
    allowed_origins: list[str] = Field(default_factory=lambda: ["*"],
                                       description="origins browsers may post from; '*' reflects any origin")
    rate_per_second: float = Field(default=50.0, gt=0, description="events per second per write key (refill)")
    rate_burst: int = Field(default=500, ge=1, description="bucket size: events one write key may send at once")
    max_event_bytes: int = Field(default=32 * 1024, ge=1024, description="one event, as JSON (Segment: 32 KB)")
    max_batch_bytes: int = Field(default=500 * 1024, ge=1024, description="one request body (Segment: 500 KB)")
    max_decompressed_bytes: int | None = Field(default=None, description="gzip bodies; default max_batch_bytes")
    clock_skew: float = Field(default=300.0, description="client clock error tolerated before correcting by sentAt")
    event_names: dict[str, str] = Field(default_factory=dict, description="track event name → event type")
    identity_traits: list[str] = Field(default_factory=lambda: ["email"],
                                       description="identify traits that become ids of the lead (stitching)")
    blocked_traits: list[str] = Field(default_factory=list, description="more traits never copied to the lead")
    onsite_store: str | None = Field(default=None, description="SQLite file of on-site messages")
    onsite_lookup: list[str] = Field(default_factory=lambda: ["anonymous_id"],
                                     description="which visitor ids may fetch a lead's on-site messages")
    onsite_ttl: float = Field(default=30 * 86400.0, description="an unshown on-site message expires after this")
    onsite_lease: float = Field(default=30.0, description="a fetched, unconfirmed message waits this long")
    onsite_per_page: int = Field(default=1, ge=1, le=10, description="messages one page shows at most")
    onsite_once_per_rule: bool = Field(default=True,
                                       description="one on-site message per rule per person, ever")

    @field_validator("clock_skew", "onsite_ttl", "onsite_lease", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return seconds(value)

    @field_validator("write_keys")
    @classmethod
    def _keys(cls, keys: list[str]) -> list[str]:
        cleaned = [k.strip() for k in keys if k and k.strip()]
        for key in cleaned:
            if ":" in key or len(key) > 200:
                raise ValueError(f"write key {key[:20]!r}... may not contain ':' nor exceed 200 characters")
        return cleaned

    @field_validator("onsite_lookup")
    @classmethod
    def _lookup(cls, kinds: list[str]) -> list[str]:
        for kind in kinds:
            if kind not in LOOKUP_KINDS:
                raise ValueError(f"onsite_lookup: {kind!r} is not one of {', '.join(LOOKUP_KINDS)} "
                                 "(emails are never accepted in a URL)")
        return kinds

    @property
    def decompressed_cap(self) -> int:
        return self.max_decompressed_bytes or self.max_batch_bytes


def parse(options: dict[str, Any] | None) -> TrackerSettings:
    return validate_settings("web_tracker", TrackerSettings, options)


def onsite_path(options: TrackerSettings, data_dir: Path) -> str:
    """Where the on-site messages live: `onsite_store`, else `onsite.sqlite` in the plugin's data folder.

    A relative `onsite_store` is taken relative to that folder; `:memory:` keeps them in this process only.
    """

    if options.onsite_store == ":memory:":
        return ":memory:"
    if options.onsite_store:
        return str(data_dir / options.onsite_store)  # an absolute path stays as it is
    return str(data_dir / "onsite.sqlite")
