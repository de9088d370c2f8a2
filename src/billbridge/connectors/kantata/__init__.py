"""Kantata OX (formerly Mavenlink; the PSA): projects, stories, time entries
and expenses in (polling with a stored cursor, and Subscribed Events forwarded
by a signing relay), ERP ids, project code and invoice status out (project
custom field values). See docs/connectors/kantata.md.

Connection: ``base_url`` (``https://api.mavenlink.com/api/v1``); credentials
``access_token`` (OAuth 2.0 bearer) and ``webhook_secret`` (shared with the
relay); options ``workers`` and ``custom_fields`` (mappings, JSON when they
come from the environment), ``project_statuses``, ``requests_per_minute``,
``limited_requests_per_minute``, ``page_size``, ``lookback_seconds``,
``deletion_window_days``, ``reconcile_every``.
"""

from __future__ import annotations

from billbridge.connectors.base import (
    Connection,
    ConnectorSpec,
    RateLimit,
    Source,
    Target,
    WebhookReceiver,
)
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.kantata.client import DEFAULT_BASE_URL, KantataClient, per_minute
from billbridge.connectors.kantata.mapping import MappingConfig

_CLIENTS: ClientCache[KantataClient] = ClientCache()


def _per_minute(value: object, default: int) -> RateLimit:
    return per_minute(int(str(value)) if value not in (None, "") else default)


def client_for(connection: Connection) -> KantataClient:
    """One client per account, shared by the connection's source, target and
    webhook door, so that together they keep within the account's limits."""
    creds, options = connection.credentials, connection.options
    token = creds.get("access_token") or creds.get("token", "")
    return _CLIENTS.get(
        (connection.name, connection.base_url or DEFAULT_BASE_URL, token),
        lambda: KantataClient(
            connection.base_url or DEFAULT_BASE_URL, access_token=token,
            rate_limit=_per_minute(options.get("requests_per_minute"), 100),
            limited_rate_limit=_per_minute(options.get("limited_requests_per_minute"), 30)))


def _config(connection: Connection) -> MappingConfig:
    return MappingConfig.from_options(connection.options, source=connection.name)


def _source(connection: Connection) -> Source:
    from billbridge.connectors.kantata.source import KantataSource

    options = connection.options
    return KantataSource(client_for(connection), name=connection.name,
                         config=_config(connection),
                         page_size=int(options.get("page_size", 200)),
                         lookback_seconds=int(options.get("lookback_seconds", 1)),
                         deletion_window_days=int(options.get("deletion_window_days", 31)),
                         reconcile_every=float(options.get("reconcile_every", 3600)))


def _target(connection: Connection) -> Target:
    from billbridge.connectors.kantata.target import KantataTarget

    return KantataTarget(client_for(connection), name=connection.name,
                         config=_config(connection))


def _webhooks(connection: Connection) -> WebhookReceiver:
    from billbridge.connectors.kantata.webhooks import KantataWebhooks

    return KantataWebhooks(connection.credentials.get("webhook_secret", ""),
                           client_for(connection), config=_config(connection))


CONNECTOR = ConnectorSpec("kantata", source=_source, target=_target, webhooks=_webhooks)
