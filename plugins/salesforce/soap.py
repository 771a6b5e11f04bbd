"""Outbound Messages: the SOAP 1.1 `notifications` envelope Salesforce posts, and the ACK it waits for.

Parsing is defensive because the body is untrusted until the organization id is checked, and XML is the
format with the famous traps: `defusedxml` refuses any DOCTYPE (so no entity expansion, "billion laughs", and no
external entities or DTD fetches, hence no network), and a document with anything but the expected envelope is
refused rather than guessed at.

Shape (Salesforce SOAP API Developer Guide, "Understanding the Outbound Messaging WSDL")::

    <soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ...>
     <soapenv:Body>
      <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
       <OrganizationId>00D...</OrganizationId> <ActionId>04k...</ActionId> <SessionId xsi:nil="true"/>
       <EnterpriseUrl>...</EnterpriseUrl> <PartnerUrl>...</PartnerUrl>
       <Notification>                                   (1 to 100 of them)
        <Id>04l...</Id>                                 (stable across redeliveries: our dedup key)
        <sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
         <sf:Id>00Q...</sf:Id> <sf:Email>...</sf:Email> <sf:Phone xsi:nil="true"/> ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100  # maxOccurs="100" in the outbound messaging WSDL

ACK = (
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soapenv:Body>"
    '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    "<Ack>true</Ack>"
    "</notificationsResponse>"
    "</soapenv:Body>"
    "</soapenv:Envelope>"
)
"""The acknowledgement: HTTP 200 with this body. Anything else (another body, JSON, a wrong namespace) is not an
ACK and Salesforce redelivers the whole message, with backoff, for up to 24 hours."""

ACK_CONTENT_TYPE = "text/xml; charset=utf-8"


class BadMessage(ValueError):
    """The body is not an Outbound Message we can read safely (answered 400, never stored)."""


@dataclass
class Notification:
    id: str
    sobject: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutboundMessage:
    organization_id: str
    action_id: str | None
    notifications: list[Notification]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _text(element: Any) -> str | None:
    if element.get(f"{{{XSI}}}nil") == "true":
        return None
    return (element.text or "").strip()


def parse(body: bytes) -> OutboundMessage:
    """Read an Outbound Message; `BadMessage` for anything unsafe or unexpected."""

    if not body.strip():
        raise BadMessage("empty body; expected a SOAP notifications envelope")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise BadMessage(f"refused: the XML declares a DTD or entities ({type(exc).__name__})") from None
    except SafeET.ParseError as exc:
        raise BadMessage(f"not well-formed XML: {exc}") from None
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise BadMessage("not a SOAP 1.1 envelope")
    notifications = root.find(f"{{{SOAP_ENV}}}Body/{{{OUTBOUND}}}notifications")
    if notifications is None:
        raise BadMessage(f"no <notifications xmlns=\"{OUTBOUND}\"> in the SOAP body")
    org = notifications.find(f"{{{OUTBOUND}}}OrganizationId")
    if org is None or not _text(org):
        raise BadMessage("no OrganizationId")
    action = notifications.find(f"{{{OUTBOUND}}}ActionId")
    items = notifications.findall(f"{{{OUTBOUND}}}Notification")
    if len(items) > MAX_NOTIFICATIONS:
        raise BadMessage(f"{len(items)} notifications; an Outbound Message carries at most {MAX_NOTIFICATIONS}")
    return OutboundMessage(organization_id=_text(org) or "",
                           action_id=_text(action) if action is not None else None,
                           notifications=[_notification(n, i) for i, n in enumerate(items)])


def _notification(element: Any, index: int) -> Notification:
    nid = element.find(f"{{{OUTBOUND}}}Id")
    sobject = element.find(f"{{{OUTBOUND}}}sObject")
    if nid is None or not _text(nid):
        raise BadMessage(f"Notification[{index}] has no Id")
    if sobject is None:
        raise BadMessage(f"Notification[{index}] has no sObject")
    declared = sobject.get(f"{{{XSI}}}type") or ""
    sobject_type = declared.rsplit(":", 1)[-1]
    if not sobject_type:
        raise BadMessage(f"Notification[{index}]: sObject has no xsi:type")
    fields: dict[str, Any] = {}
    for child in sobject:
        if not isinstance(child.tag, str) or len(child):  # comments; nested (relationship) elements
            continue
        if _ns(child.tag) not in ("urn:sobject.enterprise.soap.sforce.com", "urn:sobject.partner.soap.sforce.com"):
            continue
        fields[_local(child.tag)] = _text(child)
    if not fields.get("Id"):
        raise BadMessage(f"Notification[{index}]: the {sobject_type} has no Id field")
    return Notification(id=_text(nid) or "", sobject=sobject_type, fields=fields)
