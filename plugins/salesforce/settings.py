"""The Salesforce plugin's options (`plugins: {salesforce: {...}}` in crmrules.yaml), checked once, with defaults.

Secrets never live here: the session id, password, security token, Flow secret and Outbound Message token
come from the environment (or `NAME_FILE`) through `crmrules.config.secret`, see `SECRETS`.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crmrules.api import validate_settings

NAME = "salesforce"

SECRETS = {
    "instance_url": "SALESFORCE_INSTANCE_URL",
    "session_id": "SALESFORCE_SESSION_ID",
    "username": "SALESFORCE_USERNAME",
    "password": "SALESFORCE_PASSWORD",
    "security_token": "SALESFORCE_SECURITY_TOKEN",
    "flow_secret": "SALESFORCE_FLOW_SECRET",
    "outbound_token": "SALESFORCE_OUTBOUND_TOKEN",
    "organization_id": "SALESFORCE_ORGANIZATION_ID",
}
"""Environment variable (or `<NAME>_FILE`) of each secret; the organization id may live in either place."""

SOBJECTS = ("Lead", "Contact", "Account", "Opportunity")

# What a poll selects by default: enough for rules about the usual fields, conversion and links to accounts.
# LastModifiedDate and Id are always added (the cursor is built from them).
DEFAULT_PULL_FIELDS: dict[str, list[str]] = {
    "Lead": ["Email", "FirstName", "LastName", "Company", "Title", "Phone", "Status", "Rating", "LeadSource",
             "Industry", "Country", "HasOptedOutOfEmail", "IsConverted", "ConvertedContactId",
             "ConvertedAccountId", "OwnerId"],
    "Contact": ["Email", "FirstName", "LastName", "Title", "Phone", "LeadSource", "HasOptedOutOfEmail",
                "AccountId", "OwnerId"],
    "Account": ["Name", "Industry", "Website", "Type", "NumberOfEmployees", "AnnualRevenue", "OwnerId"],
    "Opportunity": ["Name", "StageName", "Amount", "CloseDate", "Probability", "AccountId", "IsClosed", "IsWon",
                    "OwnerId"],
}

# crmrules property → Salesforce field, per sObject. Inbound, each Salesforce field also appears under its
# crmrules name (so `lead: {email: ...}`, consent guards and `{{ lead.name }}` work); outbound, `set:` of a
# crmrules name writes the Salesforce field. Any other property name is taken to be a Salesforce API name.
DEFAULT_FIELD_MAP: dict[str, dict[str, str]] = {
    "Lead": {"email": "Email", "first_name": "FirstName", "last_name": "LastName", "company": "Company",
             "title": "Title", "phone": "Phone", "mobile_phone": "MobilePhone", "status": "Status",
             "rating": "Rating", "lead_source": "LeadSource", "industry": "Industry", "country": "Country",
             "email_unsubscribed": "HasOptedOutOfEmail"},
    "Contact": {"email": "Email", "first_name": "FirstName", "last_name": "LastName", "title": "Title",
                "phone": "Phone", "mobile_phone": "MobilePhone", "lead_source": "LeadSource",
                "email_unsubscribed": "HasOptedOutOfEmail"},
    "Account": {"name": "Name", "industry": "Industry", "website": "Website", "type": "Type",
                "employees": "NumberOfEmployees", "annual_revenue": "AnnualRevenue"},
    "Opportunity": {"name": "Name", "stage": "StageName", "amount": "Amount", "close_date": "CloseDate",
                    "probability": "Probability"},
}

API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")


class SalesforceSettings(BaseModel):
    """Everything an admin may set; unknown keys are errors (a typo must not silently change behaviour)."""

    model_config = ConfigDict(extra="forbid")

    # --- inbound
    organization_id: str | None = Field(
        default=None, description="the org's id (18 chars; the 15-char form works too); Outbound Messages from "
                                  "any other org are refused. Else $SALESFORCE_ORGANIZATION_ID.")
    flow_secret_header: str = Field(default="X-Crmrules-Secret",
                                    description="header carrying $SALESFORCE_FLOW_SECRET on Flow callouts "
                                                "(`Authorization: Bearer <secret>` is accepted too)")
    # --- connection
    instance_url: str | None = Field(default=None, description="else $SALESFORCE_INSTANCE_URL")
    domain: str = Field(default="login", description="login host for username/password: login, test, or My Domain")
    api_version: str | None = Field(default=None, description="REST API version, e.g. 59.0 (simple-salesforce's "
                                                              "default when unset)")
    timeout: float = Field(default=30.0, gt=0, description="seconds per HTTP call to Salesforce")
    # --- field mapping
    fields: dict[str, str] = Field(default_factory=dict,
                                   description="extra crmrules property → Salesforce field names, all sObjects")
    pull_fields: dict[str, list[str]] = Field(default_factory=dict,
                                              description="per sObject: fields a poll selects (replaces default)")
    pull_objects: list[str] = Field(default_factory=lambda: list(SOBJECTS))
    pull_batch_size: int = Field(default=200, ge=1, le=2000, description="records per sObject per poll")
    poll_every: str | float | None = Field(default=None, description="the sidecar polls this often (e.g. 5m); "
                                                                      "read by crmrules serve, not by the plugin")
    # --- outbound
    tags_field: str = Field(default="Crmrules_Tags__c", description="text field holding tags, `a;b;c`")
    score_field: str = Field(default="Crmrules_Score__c", description="number field the score is added to")
    task_key_field: str | None = Field(
        default=None, description="a Text(64) custom field on Activity holding the idempotency key; when unset "
                                  "the key is a marker line at the end of the task's Description")
    task_type: str | None = Field(default=None, description="Task.Type for `task:` actions (e.g. Call)")
    priorities: dict[str, str] = Field(default_factory=lambda: {"low": "Low", "medium": "Normal", "high": "High"})
    owners: dict[str, str] = Field(default_factory=dict,
                                   description="rule `owner:` values (names, emails) → Salesforce User ids")
    timezone: str = Field(default="UTC", description="the org's time zone, for a task's ActivityDate")
    message_mode: Literal["task", "email"] = Field(
        default="task", description="`task`: an Email-type Task for a rep to send; `email`: send through the "
                                    "emailSimple REST action, then log a completed Task")
    email_sender_type: str | None = Field(default=None, description="emailSimple senderType (CurrentUser, "
                                                                    "DefaultWorkflowUser, OrgWideEmailAddress)")
    email_sender_address: str | None = None
    match_by_email: bool = Field(default=True, description="find the Contact/Lead by email when a lead has no "
                                                           "salesforce_id (e.g. known from the web tracker)")
    limit_retry_after: float = Field(default=900.0, ge=0, description="seconds to wait after REQUEST_LIMIT_EXCEEDED")

    @field_validator("organization_id")
    @classmethod
    def _org_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not re.fullmatch(r"00D[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?", value):
            raise ValueError("an organization id is 15 or 18 letters and digits starting with 00D "
                             "(Setup → Company Information → Salesforce.com Organization ID)")
        return value

    @field_validator("tags_field", "score_field", "task_key_field", "task_type")
    @classmethod
    def _api_name(cls, value: str | None) -> str | None:
        if value is not None and not API_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a Salesforce API field name")
        return value

    @field_validator("fields")
    @classmethod
    def _mapped_names(cls, value: dict[str, str]) -> dict[str, str]:
        for prop, field in value.items():
            if not API_NAME.fullmatch(field):
                raise ValueError(f"fields.{prop}: {field!r} is not a Salesforce API field name")
        return value

    @field_validator("pull_objects")
    @classmethod
    def _objects(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in SOBJECTS]
        if unknown:
            raise ValueError(f"cannot poll {unknown}; choose among {list(SOBJECTS)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (write e.g. Asia/Seoul)") from None
        return value

    def field_map(self, sobject: str) -> dict[str, str]:
        """crmrules property → Salesforce field for one sObject: the defaults, then the admin's `fields`."""

        return {**DEFAULT_FIELD_MAP.get(sobject, {}), **self.fields}

    def fields_to_pull(self, sobject: str) -> list[str]:
        chosen = self.pull_fields.get(sobject) or DEFAULT_PULL_FIELDS[sobject]
        names = ["Id", "LastModifiedDate", *chosen]
        return list(dict.fromkeys(n for n in names if API_NAME.fullmatch(n)))


def parse(raw: dict[str, Any]) -> SalesforceSettings:
    """Validated options; a ValueError whose text names each bad key (`plugins.salesforce.<key>: ...`)."""

    return validate_settings(NAME, SalesforceSettings, raw)
