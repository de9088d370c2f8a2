"""The generic vendor: a time-tracking source and an ERP-like ledger target
with a deliberately plain wire format. It proves the engine end to end and is
the template a real vendor's folder follows (client, mapping, webhooks,
emulator)."""

from __future__ import annotations

from billbridge.connectors.base import (
    Connection,
    ConnectorSpec,
    IdempotencyMode,
    RateLimit,
    Source,
    Target,
    WebhookReceiver,
)


def _target(connection: Connection) -> Target:
    from billbridge.connectors.generic.client import LedgerTarget

    options = connection.options
    mode = IdempotencyMode(options.get("idempotency", "native"))
    # A ledger's documented limits differ per installation: options, not code.
    rate = int(options["rate_per_second"]) if "rate_per_second" in options else None
    return LedgerTarget(connection.base_url, connection.credentials.get("token", "ledger-token"),
                        name=connection.name, idempotency=mode,
                        max_batch=int(options.get("max_batch", 100)),
                        rate_limit=RateLimit(rate, 1, burst=rate) if rate else None,
                        concurrency=int(options.get("concurrency", 1)))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.generic.source import GenericTimeSource

    return GenericTimeSource(connection.base_url, name=connection.name)


def _webhooks(connection: Connection) -> WebhookReceiver:
    from billbridge.connectors.generic.webhooks import GenericWebhooks

    return GenericWebhooks(connection.credentials.get("webhook_secret", ""),
                           source=connection.name)


CONNECTOR = ConnectorSpec("generic", source=_source, target=_target, webhooks=_webhooks)
