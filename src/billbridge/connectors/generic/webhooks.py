"""Webhook signatures of the generic source: HMAC-SHA256 over
``timestamp + "." + body`` (``connectors.signing``), sent as
``X-Generic-Signature: sha256=<hex>`` with ``X-Generic-Timestamp`` in Unix
seconds; stale deliveries are refused."""

from __future__ import annotations

from typing import Any

from billbridge.connectors.base import SignatureError, WebhookRequest
from billbridge.connectors.contracts import ContractWatch
from billbridge.connectors.generic.contract import CONTRACT
from billbridge.connectors.generic.mapping import webhook_events
from billbridge.connectors.http import loads
from billbridge.connectors.signing import TOLERANCE_SECONDS, sign
from billbridge.connectors.signing import verify as _verify

__all__ = ["GenericWebhooks", "SignatureError", "sign", "verify"]


def verify(secret: str, timestamp: str, signature: str, body: bytes, *, now: float,
           tolerance: float = TOLERANCE_SECONDS) -> None:
    _verify(secret, timestamp, signature, body, now=now, tolerance=tolerance,
            signature_header="X-Generic-Signature", timestamp_header="X-Generic-Timestamp")


class GenericWebhooks:
    def __init__(self, secret: str, *, source: str = "generic") -> None:
        self.secret = secret
        self.source = source
        self.contracts = ContractWatch(CONTRACT)

    def verify(self, request: WebhookRequest, *, now: float) -> None:
        verify(self.secret, request.header("x-generic-timestamp"),
               request.header("x-generic-signature"), request.body, now=now)

    def events(self, request: WebhookRequest) -> list[Any]:
        try:
            body = loads(request.body)
        except ValueError:
            return [request.body]
        return webhook_events(body, source=self.source, contracts=self.contracts)
