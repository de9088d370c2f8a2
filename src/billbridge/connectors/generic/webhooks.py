"""Webhook signatures of the generic source: HMAC-SHA256 over
``timestamp + "." + body``, sent as ``X-Generic-Signature: sha256=<hex>`` with
``X-Generic-Timestamp`` in Unix seconds; stale deliveries are refused."""

from __future__ import annotations

import hashlib
import hmac

TOLERANCE_SECONDS = 300.0


class SignatureError(ValueError):
    """A delivery that must not be trusted; the message says why."""


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
