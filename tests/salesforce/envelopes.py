"""Outbound Message envelopes as Salesforce sends them, for tests (shape of the SOAP API Developer Guide's
"Understanding the Outbound Messaging WSDL"; the ids are made up)."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

ORG_ID = "00D000000000001AAA"
ACTION_ID = "04k000000000001AAA"

ACK = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
       b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
       b'</notificationsResponse></soapenv:Body></soapenv:Envelope>')


def notification_id(number: int) -> str:
    return f"04l{number:012d}AAA"


def _field(name: str, value: Any) -> str:
    if value is None:
        return f'<sf:{name} xsi:nil="true"/>'
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<sf:{name}>{escape(str(value))}</sf:{name}>"


def notification(nid: str, sobject: str, fields: dict[str, Any]) -> str:
    body = "".join(_field(k, v) for k, v in fields.items())
    return (f"<Notification><Id>{nid}</Id>"
            f'<sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{body}</sObject>'
            "</Notification>")


def envelope(notifications: list[str], org_id: str = ORG_ID, prolog: str = "") -> bytes:
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>' + prolog +
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org_id}</OrganizationId>"
        f"<ActionId>{ACTION_ID}</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/59.0/00D000000000001</EnterpriseUrl>"
        "<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/59.0/00D000000000001</PartnerUrl>"
        + "".join(notifications) +
        "</notifications></soapenv:Body></soapenv:Envelope>"
    )
    return text.encode("utf-8")


def lead_envelope(lead_id: str, nid: str | None = None, **fields: Any) -> bytes:
    return envelope([notification(nid or notification_id(1), "Lead", {"Id": lead_id, **fields})])
