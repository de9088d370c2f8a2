"""Salesforce Outbound Messages: a SOAP ``notifications`` POST, answered with
``<Ack>true</Ack>``; retried for up to 24 hours, possibly twice, possibly out
of order.

Outbound Messages are not signed. What this receiver verifies, and why:

* ``OrganizationId`` must be the configured org (Salesforce's own security
  advice: "validate that messages contain your organization Id"); compared on
  the 15-character case-sensitive form, so 15- and 18-character ids match.
* Optionally a shared secret the endpoint URL carries (``?token=…``) or a
  proxy adds as ``X-Billbridge-Token``; Salesforce sends the URL as
  configured, so the secret lives in the outbound message's endpoint URL.
* A replay window on each notification's ``SystemModstamp`` (the message has
  no timestamp of its own; the field must be selected in the outbound message
  definition): older than ``max_age`` (26 h by default, above Salesforce's
  24 h of retries) or more than 5 minutes in the future is refused.

IP allow-listing of Salesforce's ranges and TLS with Salesforce's client
certificate belong to the reverse proxy in front of the hub.

The message's fields are not trusted as the record: ``events`` reads the
current records through the REST client (one SOQL query per object type), so
an out-of-order or repeated message yields the same event id as the poll of
the same change, and the inbox keeps one.
"""

from __future__ import annotations

import hmac
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from billbridge.connectors.base import Malformed, SignatureError, WebhookRequest
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.salesforce.client import SalesforceClient
from billbridge.connectors.salesforce.contract import contract, message_contract
from billbridge.connectors.salesforce.mapping import (
    MappingConfig,
    closed_won_event,
    customer_event,
    parse_stamp,
)

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_AGE_SECONDS = 26 * 3600.0
FUTURE_SKEW_SECONDS = 300.0
SECRET_HEADER = "x-billbridge-token"

ACK = (b'<?xml version="1.0" encoding="UTF-8"?>'
       b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
       b'<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
       b"<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>")


@dataclass
class Notification:
    id: str
    sobject_type: str
    fields: dict[str, str | None]


@dataclass
class OutboundMessage:
    organization_id: str
    action_id: str
    session_id: str | None
    enterprise_url: str
    partner_url: str
    notifications: list[Notification] = field(default_factory=list)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_message(body: bytes) -> OutboundMessage:
    """Parse a ``notifications`` SOAP envelope; ``ValueError`` says what is wrong."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ValueError("DTDs and entities are not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    found = root.find(f".//{{{OUTBOUND_NS}}}notifications")
    if found is None:
        raise ValueError("no notifications element in the SOAP body")

    def text(name: str) -> str | None:
        element = found.find(f"{{{OUTBOUND_NS}}}{name}")
        if element is None or element.get(f"{{{XSI_NS}}}nil") == "true":
            return None
        return (element.text or "").strip()

    org = text("OrganizationId")
    if not org:
        raise ValueError("OrganizationId is missing")
    message = OutboundMessage(org, text("ActionId") or "", text("SessionId"),
                              text("EnterpriseUrl") or "", text("PartnerUrl") or "")
    for note in found.findall(f"{{{OUTBOUND_NS}}}Notification"):
        note_id = note.find(f"{{{OUTBOUND_NS}}}Id")
        sobject = note.find(f"{{{OUTBOUND_NS}}}sObject")
        if sobject is None:
            raise ValueError("a Notification has no sObject")
        kind = (sobject.get(f"{{{XSI_NS}}}type") or "").rpartition(":")[2]
        fields: dict[str, str | None] = {}
        for child in sobject:
            nil = child.get(f"{{{XSI_NS}}}nil") == "true"
            fields[_local(child.tag)] = None if nil else (child.text or "").strip()
        message.notifications.append(Notification(
            (note_id.text or "").strip() if note_id is not None else "", kind, fields))
    return message


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def outbound_message_xml(org_id: str, sobject_type: str,
                         records: Sequence[Mapping[str, Any]], *,
                         action_id: str = "04k000000000001AAA",
                         instance_url: str = "https://example.my.salesforce.com",
                         version: str = "61.0", session_id: str | None = None) -> bytes:
    """An Outbound Message as Salesforce sends it (used by the emulator and tests)."""
    session = (f"<SessionId>{escape(session_id)}</SessionId>" if session_id
               else '<SessionId xsi:nil="true"/>')
    notes = []
    for number, record in enumerate(records, 1):
        body = "".join(f'<sf:{k} xsi:nil="true"/>' if v is None else f"<sf:{k}>{_value(v)}</sf:{k}>"
                       for k, v in record.items()
                       if k != "attributes" and not isinstance(v, Mapping))
        notes.append(f"<Notification><Id>04l{number:015d}</Id>"
                     f'<sObject xsi:type="sf:{sobject_type}" xmlns:sf="{SOBJECT_NS}">'
                     f"{body}</sObject></Notification>")
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
            f'xmlns:xsi="{XSI_NS}"><soapenv:Body>'
            f'<notifications xmlns="{OUTBOUND_NS}">'
            f"<OrganizationId>{escape(org_id)}</OrganizationId>"
            f"<ActionId>{escape(action_id)}</ActionId>{session}"
            f"<EnterpriseUrl>{escape(instance_url)}/services/Soap/c/{version}/{escape(org_id)}"
            f"</EnterpriseUrl><PartnerUrl>{escape(instance_url)}/services/Soap/u/{version}/"
            f"{escape(org_id)}</PartnerUrl>{''.join(notes)}"
            "</notifications></soapenv:Body></soapenv:Envelope>").encode()


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SalesforceOutboundMessages:
    """The hub's door for Salesforce Outbound Messages."""

    def __init__(self, org_id: str, *, client: SalesforceClient | None = None,
                 secret: str = "", config: MappingConfig | None = None,
                 max_age: float = MAX_AGE_SECONDS) -> None:
        self.org_id = org_id
        self.client = client
        self.secret = secret
        self.config = config or MappingConfig()
        self.max_age = max_age
        # The records read again are the REST API's, checked as a poll checks
        # them; without a client the message's own fields are the record.
        version = f"v{getattr(client, 'version', '61.0')}"
        self.contracts = ContractWatch(contract(self.config, version=version) if client
                                       else message_contract(self.config, version=version))

    def verify(self, request: WebhookRequest, *, now: float) -> None:
        if not self.org_id:
            raise SignatureError("no Salesforce org id is configured for this source")
        if self.secret:
            given = request.header(SECRET_HEADER) or \
                (parse_qs(urlsplit(request.url).query).get("token") or [""])[0]
            if not given:
                raise SignatureError("the delivery is not authenticated (no token in the URL "
                                     "or X-Billbridge-Token header)")
            if not hmac.compare_digest(given.encode(), self.secret.encode()):
                raise SignatureError("the delivery token does not match")
        try:
            message = parse_message(request.body)
        except ValueError as exc:
            raise SignatureError(f"not a Salesforce Outbound Message: {exc}") from None
        if message.organization_id[:15] != self.org_id[:15]:
            raise SignatureError(f"OrganizationId {message.organization_id} is not the "
                                 "configured org")
        for note in message.notifications:
            stamp = parse_stamp(note.fields.get("SystemModstamp"))
            if stamp is None:
                raise SignatureError(f"notification {note.id}: no SystemModstamp to check its "
                                     "age (add the field to the outbound message)")
            age = now - stamp.timestamp()
            if age > self.max_age:
                raise SignatureError(f"notification {note.id} is stale: SystemModstamp "
                                     f"{age / 3600:.1f} h old (window "
                                     f"{self.max_age / 3600:.0f} h)")
            if age < -FUTURE_SKEW_SECONDS:
                raise SignatureError(f"notification {note.id}: SystemModstamp is in the future")

    def events(self, request: WebhookRequest) -> list[Any]:
        try:
            message = parse_message(request.body)
        except ValueError:
            return [request.body.decode("utf-8", "replace")]
        by_type: dict[str, list[Notification]] = {}
        for note in message.notifications:
            by_type.setdefault(note.sobject_type, []).append(note)
        events: list[Any] = []
        for kind, notes in by_type.items():
            if kind not in ("Opportunity", "Account"):
                events.extend(Malformed({"sObject": kind, **n.fields},
                                        f"Salesforce Outbound Message {n.id}: sObject type "
                                        f"{kind!r} is not mapped", None) for n in notes)
                continue
            records = self._current(kind, notes)
            for record in records:
                drift = self.contracts.read(kind, record)
                if kind == "Account":
                    events.append(name_drift(customer_event(record, self.config), drift))
                elif record.get("IsWon") is True or str(record.get("IsWon")).lower() == "true":
                    events.append(name_drift(closed_won_event(record, self.config), drift))
        return events

    def _current(self, kind: str, notes: list[Notification]) -> list[dict[str, Any]]:
        """The records as they are now (TransientError if Salesforce cannot be
        reached: the hub answers 503 and Salesforce delivers again)."""
        ids = [str(n.fields.get("Id")) for n in notes if n.fields.get("Id")]
        if self.client is None:
            return [dict(n.fields) for n in notes]
        fields = self.config.opportunity_fields() if kind == "Opportunity" \
            else self.config.account_fields()
        soql = (f"SELECT {', '.join(fields)} FROM {kind} WHERE Id IN "
                f"({', '.join(_quote(i) for i in ids)})")
        return self.client.query_all(soql) if ids else []

    def acknowledgement(self) -> tuple[str, bytes]:
        return "text/xml; charset=utf-8", ACK
