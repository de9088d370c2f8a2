"""HubSpot webhooks (app subscriptions), signature v3.

``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(app client secret,
method + URI + raw body + ``X-HubSpot-Request-Timestamp``)); the timestamp is
in ms and a delivery more than 300 s old (or future-dated by more) is refused.
The body is a JSON array of notifications carrying ids only: ``events``
fetches the records with one batch read per object type and maps them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from billbridge.connectors.base import Malformed, SignatureError, WebhookRequest
from billbridge.connectors.http import loads
from billbridge.connectors.hubspot.client import HubSpotClient
from billbridge.connectors.hubspot.mapping import MappingConfig
from billbridge.connectors.hubspot.source import DealEvents
from billbridge.connectors.signing import unix_time

TOLERANCE_SECONDS = 300.0

# HubSpot decodes these in the request URI before signing (v3 docs' table).
_URI_DECODE = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
               "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
_OBJECT_TYPE_IDS = {"0-3": "deals", "0-2": "companies"}

__all__ = ["HubSpotWebhooks", "SignatureError", "sign_v3", "verify_v3"]


def _decode_uri(uri: str) -> str:
    for encoded, plain in _URI_DECODE.items():
        uri = uri.replace(encoded, plain).replace(encoded.lower(), plain)
    return uri


def sign_v3(client_secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + _decode_uri(uri).encode() + body + timestamp.encode()
    digest = hmac.new(client_secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_v3(client_secret: str, request: WebhookRequest, *, now: float,
              uri: str | None = None, tolerance: float = TOLERANCE_SECONDS) -> None:
    if not client_secret:
        raise SignatureError("no HubSpot app client secret is configured for this source")
    signature = request.header("x-hubspot-signature-v3")
    if not signature:
        raise SignatureError("the delivery is not signed (X-HubSpot-Signature-v3 missing)")
    stamp = request.header("x-hubspot-request-timestamp")
    sent = unix_time(stamp, "X-HubSpot-Request-Timestamp", per_second=1000)
    if now - sent > tolerance:
        raise SignatureError(f"the delivery is stale: signed {now - sent:.0f} s ago, more than "
                             f"the {tolerance:.0f} s allowed")
    if sent - now > tolerance:
        raise SignatureError(f"the delivery is stale: its timestamp is {sent - now:.0f} s in "
                             "the future")
    expected = sign_v3(client_secret, request.method, uri or request.url, request.body, stamp)
    if not hmac.compare_digest(expected, signature):
        raise SignatureError("the signature does not match the body")


def _object_type(note: Mapping[str, Any]) -> str | None:
    kind = str(note.get("subscriptionType") or "")
    prefix, _, action = kind.partition(".")
    if prefix == "object":
        prefix = {"deals": "deal", "companies": "company"}.get(
            _OBJECT_TYPE_IDS.get(str(note.get("objectTypeId")), ""), "")
    if action in ("deletion", "privacyDeletion"):
        return None  # nothing canonical to emit (see docs/connectors/hubspot.md)
    return {"deal": "deals", "company": "companies"}.get(prefix)


class HubSpotWebhooks:
    def __init__(self, client_secret: str, client: HubSpotClient, *,
                 source: str = "hubspot", config: MappingConfig | None = None,
                 public_url: str | None = None,
                 tolerance: float = TOLERANCE_SECONDS) -> None:
        self.client_secret = client_secret
        self.client = client
        self.source = source
        self.config = config or MappingConfig(source=source)
        self.public_url = public_url  # the URL HubSpot calls, when a proxy rewrites it
        self.tolerance = tolerance
        self.events_of = DealEvents(client, self.config)
        self.contracts = self.events_of.contracts

    def verify(self, request: WebhookRequest, *, now: float) -> None:
        uri = request.url
        if self.public_url:
            query = request.url.partition("?")[2]
            uri = self.public_url + (f"?{query}" if query else "")
        verify_v3(self.client_secret, request, now=now, uri=uri, tolerance=self.tolerance)

    def events(self, request: WebhookRequest) -> list[Any]:
        try:
            body = loads(request.body)
        except ValueError:
            return [Malformed(request.body.decode(errors="replace"),
                              "HubSpot webhook body is not JSON")]
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list):
            return [Malformed(body, "HubSpot webhook body is not an array of notifications")]
        ids: dict[str, list[str]] = {"deals": [], "companies": []}
        for note in body:
            if not isinstance(note, dict) or note.get("objectId") in (None, ""):
                continue
            object_type = _object_type(note)
            if object_type is not None:
                ids[object_type].append(str(note["objectId"]))
        events: list[Any] = []
        if ids["deals"]:
            deals = self.client.batch_read("deals", ids["deals"],
                                           properties=self.config.deal_properties())
            events += self.events_of.for_deals(deals)
        if ids["companies"]:
            companies = self.client.batch_read("companies", ids["companies"],
                                               properties=self.config.company_properties())
            events += self.events_of.for_companies(companies)
        return events
