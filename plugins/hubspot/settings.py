"""The HubSpot plugin's options: `plugins: {hubspot: {...}}` in crmrules.yaml.

Every key has a default, so a deployment writes only what differs. Secrets are not options: the app's client
secret and the access token come from the environment (`HUBSPOT_CLIENT_SECRET`, `HUBSPOT_ACCESS_TOKEN`, or the
`*_FILE` variants), never from this file and never from rules.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crmrules.api import validate_settings

ObjectType = Literal["contacts", "companies", "deals"]
OBJECT_TYPES: tuple[ObjectType, ...] = ("contacts", "companies", "deals")


class HubSpotSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # ---- in: webhooks
    public_url: str | None = Field(
        default=None,
        description="the exact target URL configured in the HubSpot app (scheme, host, path, query); the v3 "
                    "signature covers it, so behind a proxy it differs from the URL this process sees. "
                    "Unset: the URL of the request as received")
    max_age: float = Field(default=300.0, gt=0, description="seconds a signed request stays valid (HubSpot: 5 min)")
    max_clock_skew: float = Field(default=60.0, ge=0,
                                  description="seconds a request timestamp may lie in our future (clock error)")
    portal_ids: list[int] = Field(default_factory=list,
                                  description="accept notifications of these HubSpot accounts only; empty = any")
    max_batch: int = Field(default=1000, ge=1, description="notifications one request may carry (HubSpot: 100)")
    event_names: dict[str, str] = Field(default_factory=dict,
                                        description="behavioural event name (e.g. pe123_pricing_viewed) → event type")

    # ---- out: pushes
    host: str | None = Field(default=None, description="API base URL; default https://api.hubapi.com")
    timeout: float = Field(default=10.0, gt=0, description="seconds per HubSpot API call")
    tags_property: str = Field(default="crmrules_tags", min_length=1,
                               description="semicolon-separated (multi-checkbox or text) property holding tags")
    score_property: str = Field(default="crmrules_score", min_length=1, description="number property for score")
    score_ledger_property: str | None = Field(
        default="crmrules_score_keys",
        description="text property remembering the last score pushes applied, so a retry never adds twice; "
                    "null turns the ledger off")
    score_ledger_size: int = Field(default=40, ge=1, le=500)
    key_property: str | None = Field(
        default="crmrules_key",
        description="text property on tasks and notes holding the crmrules idempotency key; searched before "
                    "creating so a retried push creates nothing twice. null turns de-duplication off")
    search_lag: float = Field(default=10.0, ge=0,
                              description="seconds HubSpot search may lag writes; a create that timed out is "
                                          "retried no sooner, so the retry's search sees the first attempt")
    email_template_ids: dict[str, int] = Field(
        default_factory=dict,
        description="message template name (or `default`) → HubSpot transactional email id; without one a "
                    "message is recorded as a note only")
    owner_ids: dict[str, str] = Field(default_factory=dict,
                                      description="task owner as rules write it (name/email) → HubSpot owner id")
    property_map: dict[ObjectType, dict[str, str]] = Field(
        default_factory=dict, description="extra HubSpot property → crmrules property names, per object type")

    # ---- poller
    poll_every: str | float | None = Field(
        default=None, description="read by the core's poller: pull this often (e.g. 5m); unset = webhooks only")
    poll_objects: list[ObjectType] = Field(default_factory=lambda: list(OBJECT_TYPES))
    poll_properties: dict[ObjectType, list[str]] = Field(
        default_factory=dict, description="HubSpot properties to fetch per object type; default: the mapped ones")
    poll_page_size: int = Field(default=100, ge=1, le=200)
    poll_max_records: int = Field(default=2000, ge=1, le=9000,
                                  description="records per object type per pull; more → PullResult.more")
    poll_overlap: float = Field(default=60.0, ge=0,
                                description="seconds re-read before the cursor: search lags writes, and re-read "
                                            "records keep their event id, so the inbox drops them")

    @field_validator("public_url", "host")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with https:// (or http:// for a local test)")
        return value

    @field_validator("tags_property", "score_property", "score_ledger_property", "key_property")
    @classmethod
    def _property_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(ch.isspace() for ch in value)):
            raise ValueError(f"{value!r} is not a HubSpot property's internal name (no spaces)")
        return value


def parse(options: dict[str, Any] | None) -> HubSpotSettings:
    return validate_settings("hubspot", HubSpotSettings, options)
