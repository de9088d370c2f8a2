"""The Kantata webhook door.

Kantata OX sends no signed webhooks of its own: its change feed is the
Subscribed Events API (an account add-on an administrator reads; events may
arrive late, out of order or twice). A relay (Kantata's integration tooling, an
iPaaS, a small forwarder) posts those events here, signed with a secret it
shares with billbridge: ``X-Billbridge-Timestamp`` (Unix seconds) and
``X-Billbridge-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." +
body)>``, refused outside a 300 s window (``connectors.signing``).

The signature proves the relay; it cannot prove what Kantata said. So nothing
in a delivery is trusted but the subject's type and id: every record is read
again from Kantata's API with billbridge's own token, and a deletion counts
only when Kantata no longer returns the record. A forged or replayed body can
at most make the hub read real records again, which the inbox deduplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billbridge.connectors.base import Malformed, WebhookRequest
from billbridge.connectors.contracts import ContractWatch
from billbridge.connectors.http import loads
from billbridge.connectors.kantata.client import KantataClient
from billbridge.connectors.kantata.contract import CONTRACT
from billbridge.connectors.kantata.events import KantataEvents
from billbridge.connectors.kantata.mapping import MappingConfig
from billbridge.connectors.signing import TOLERANCE_SECONDS, SecretReceiver, verify

SIGNATURE_HEADER = "X-Billbridge-Signature"
TIMESTAMP_HEADER = "X-Billbridge-Timestamp"


def subscribed_events(body: Any) -> list[Mapping[str, Any]] | None:
    """The Subscribed Event objects in a delivery: Kantata's normalised
    ``GET /subscribed_events`` answer as the relay received it, a list of
    event objects, or one event; None when it is none of these."""
    if isinstance(body, dict) and isinstance(body.get("subscribed_events"), dict):
        events = body["subscribed_events"]
        order = [str(r.get("id")) for r in body.get("results") or [] if isinstance(r, dict)]
        return [events[i] for i in order if i in events] or list(events.values())
    if isinstance(body, dict) and "event_type" in body:
        return [body]
    if isinstance(body, list) and all(isinstance(e, dict) for e in body):
        return body
    return None


class KantataWebhooks(SecretReceiver[KantataClient, MappingConfig]):
    def __init__(self, secret: str, client: KantataClient, *,
                 config: MappingConfig | None = None,
                 tolerance: float = TOLERANCE_SECONDS) -> None:
        super().__init__(secret, client, config or MappingConfig(), tolerance)
        self.contracts = ContractWatch(CONTRACT)

    def verify(self, request: WebhookRequest, *, now: float) -> None:
        verify(self.secret, request.header(TIMESTAMP_HEADER), request.header(SIGNATURE_HEADER),
               request.body, now=now, tolerance=self.tolerance,
               signature_header=SIGNATURE_HEADER, timestamp_header=TIMESTAMP_HEADER)

    def events(self, request: WebhookRequest) -> list[Any]:
        try:
            body = loads(request.body)
        except ValueError:
            return [Malformed(request.body.decode(errors="replace"),
                              "Kantata relay delivery is not JSON")]
        notes = subscribed_events(body)
        if notes is None:
            return [Malformed(body, "Kantata relay delivery holds no Subscribed Events "
                              "(expected Kantata's subscribed_events answer or a list of "
                              "event objects)")]
        return KantataEvents(self.client, self.config, self.contracts).for_subscribed_events(notes)
