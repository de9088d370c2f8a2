"""HubSpot (CRM): won deals and companies in (search polling and v3-signed
webhooks), ERP ids and invoice status written back to deals and companies
(batch update). See docs/connectors/hubspot.md."""

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
from billbridge.connectors.hubspot.client import DEFAULT_BASE_URL, HubSpotClient, hubspot_rate_limit

_CLIENTS: ClientCache[HubSpotClient] = ClientCache()


def client_for(connection: Connection) -> HubSpotClient:
    """One client per account, shared by the connection's source, target and
    webhook door, so that together they keep within the account's limits.

    Credentials: ``access_token`` (private app or OAuth), optionally
    ``refresh_token`` + ``client_id`` + ``client_secret`` for OAuth refresh.
    Options: ``requests_per_10s`` (100, or 190 on Professional/Enterprise) and
    ``search_requests_per_second`` (4)."""
    creds = connection.credentials
    token = creds.get("access_token") or creds.get("token", "")
    per_10s = int(connection.options.get("requests_per_10s", 100))
    per_second = int(connection.options.get("search_requests_per_second", 4))
    return _CLIENTS.get(
        (connection.name, connection.base_url or DEFAULT_BASE_URL, token),
        lambda: HubSpotClient(
            connection.base_url or DEFAULT_BASE_URL, access_token=token,
            refresh_token=creds.get("refresh_token"), client_id=creds.get("client_id"),
            client_secret=creds.get("client_secret"),
            rate_limit=hubspot_rate_limit(per_10s, 10.0),
            search_rate_limit=RateLimit(max(1, per_second - 1), 1.0, burst=1)))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.hubspot.mapping import MappingConfig
    from billbridge.connectors.hubspot.source import HubSpotSource

    return HubSpotSource(client_for(connection), name=connection.name,
                         config=MappingConfig.from_options(connection.options,
                                                           source=connection.name),
                         page_size=int(connection.options.get("page_size", 100)))


def _target(connection: Connection) -> Target:
    from billbridge.connectors.hubspot.target import HubSpotTarget

    return HubSpotTarget(client_for(connection), name=connection.name)


def _webhooks(connection: Connection) -> WebhookReceiver:
    from billbridge.connectors.hubspot.mapping import MappingConfig
    from billbridge.connectors.hubspot.webhooks import HubSpotWebhooks

    return HubSpotWebhooks(connection.credentials.get("client_secret", ""),
                           client_for(connection), source=connection.name,
                           config=MappingConfig.from_options(connection.options,
                                                             source=connection.name),
                           public_url=connection.options.get("webhook_url"))


CONNECTOR = ConnectorSpec("hubspot", source=_source, target=_target, webhooks=_webhooks)
