"""Webhook signatures of the generic source: HMAC-SHA256 over
``timestamp + "." + body``, sent as ``X-Generic-Signature: sha256=<hex>`` with
``X-Generic-Timestamp`` in Unix seconds; stale deliveries are refused."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from billbridge.connectors.base import SignatureError, WebhookRequest
from billbridge.connectors.generic.mapping import webhook_events

TOLERANCE_SECONDS = 300.0

__all__ = ["GenericWebhooks", "SignatureError", "sign", "verify"]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, signature: str, body: bytes, *, now: float,
           tolerance: float = TOLERANCE_SECONDS) -> None:
    if not secret:
        raise SignatureError("no webhook secret is configured for this source")
    if not signature:
        raise SignatureError("the delivery is not signed (X-Generic-Signature missing)")
    try:
        sent = float(timestamp)
    except ValueError:
        raise SignatureError("X-Generic-Timestamp is missing or not a number") from None
    if abs(now - sent) > tolerance:
        raise SignatureError(f"the delivery is stale: signed {now - sent:.0f} s ago, "
                             f"more than the {tolerance:.0f} s allowed")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise SignatureError("the signature does not match the body")


class GenericWebhooks:
    def __init__(self, secret: str, *, source: str = "generic") -> None:
        self.secret = secret
        self.source = source

    def verify(self, request: WebhookRequest, *, now: float) -> None:
        verify(self.secret, request.header("x-generic-timestamp"),
               request.header("x-generic-signature"), request.body, now=now)

    def events(self, request: WebhookRequest) -> list[Any]:
        try:
            body = json.loads(request.body)
        except ValueError:
            return [request.body]
        return webhook_events(body, source=self.source)
