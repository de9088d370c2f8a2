"""A shared-secret webhook signature for senders that have no scheme of their
own: HMAC-SHA256 over ``timestamp + "." + body``, sent as ``sha256=<hex>``
beside a Unix-seconds timestamp, refused when older (or newer) than the
replay window. The generic vendor signs this way, and so does a relay that
forwards an unsigned vendor's change feed (Kantata's Subscribed Events)."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Generic, TypeVar

from billbridge.connectors.base import SignatureError

TOLERANCE_SECONDS = 300.0
C = TypeVar("C")
M = TypeVar("M")
_DECIMAL = re.compile(r"[0-9]{1,20}(\.[0-9]{1,9})?")


def unix_time(stamp: str, header: str, *, per_second: int = 1) -> float:
    """A signed timestamp header read as Unix seconds. Only plain decimal
    numbers: ``nan`` would compare as inside any replay window, and ``inf``,
    exponents or signs are nothing a sender writes."""
    if not _DECIMAL.fullmatch(stamp or ""):
        raise SignatureError(f"{header} is missing or not a Unix time written in digits")
    return float(stamp) / per_second


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, signature: str, body: bytes, *, now: float,
           tolerance: float = TOLERANCE_SECONDS, signature_header: str = "signature",
           timestamp_header: str = "timestamp") -> None:
    """Raise ``SignatureError`` naming what is wrong; the header names only
    make the messages say which header to look at."""
    if not secret:
        raise SignatureError("no webhook secret is configured for this source")
    if not signature:
        raise SignatureError(f"the delivery is not signed ({signature_header} missing)")
    sent = unix_time(timestamp, timestamp_header)
    if abs(now - sent) > tolerance:
        raise SignatureError(f"the delivery is stale: signed {now - sent:.0f} s ago, "
                             f"more than the {tolerance:.0f} s allowed")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise SignatureError("the signature does not match the body")


class SecretReceiver(Generic[C, M]):
    """What a webhook door that reads every changed record again holds: the
    secret its deliveries are signed with, the vendor client it reads with,
    the mapping config and the replay window in seconds."""

    def __init__(self, secret: str, client: C, config: M, tolerance: float) -> None:
        self.secret = secret
        self.client = client
        self.config = config
        self.tolerance = tolerance
