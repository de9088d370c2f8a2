"""Microsoft Dynamics 365 Sales (Dataverse Web API v9.2), CRM: won
opportunities with their accounts in (change tracking or ``modifiedon``
polling, and plug-in webhooks with a shared key, every row read again), ERP
ids, project code and invoice status written back to the opportunity and its
account (``PATCH`` by id or alternate key in ``$batch`` change sets). See
docs/connectors/dynamics-sales.md."""

from __future__ import annotations

from billbridge.connectors.base import (
    Connection,
    ConnectorSpec,
    Source,
    Target,
    WebhookReceiver,
)
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.dynamics_sales.client import (
    CONCURRENCY_LIMIT,
    DataverseClient,
    dataverse_rate_limit,
)
from billbridge.connectors.odata import account_of, entra_options

_CLIENTS: ClientCache[DataverseClient] = ClientCache()


def _flag(value: object, default: bool) -> bool:
    if value in (None, ""):
        return default
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def client_for(connection: Connection) -> DataverseClient:
    """One client per application user, shared by the connection's source,
    target and webhook door, so that together they keep within its limits.

    Credentials: ``tenant``, ``client_id``, ``client_secret``. Options:
    ``authority`` (default Entra ID's), ``scope`` (default
    ``<environment URL>/.default``), ``requests_per_300s`` (6000),
    ``token_refresh_margin`` seconds (300), ``expired_token_statuses``
    (``400,410``)."""
    options = connection.options
    statuses = str(options.get("expired_token_statuses") or "400,410")
    return _CLIENTS.get(account_of(connection), lambda: DataverseClient(
        connection.base_url, authority=options.get("authority") or None,
        rate_limit=dataverse_rate_limit(int(options.get("requests_per_300s", 6000))),
        expired_token_statuses=[int(s) for s in statuses.split(",") if s.strip()],
        **entra_options(connection)))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.dynamics_sales.mapping import MappingConfig
    from billbridge.connectors.dynamics_sales.source import DynamicsSource

    options = connection.options
    return DynamicsSource(client_for(connection), name=connection.name,
                          config=MappingConfig.from_options(options, source=connection.name),
                          page_size=int(options.get("page_size", 500)),
                          change_tracking=_flag(options.get("change_tracking"), True),
                          overlap_seconds=float(options.get("overlap_seconds", 0)))


def _target(connection: Connection) -> Target:
    from billbridge.connectors.dynamics_sales.mapping import writeback_columns
    from billbridge.connectors.dynamics_sales.target import DynamicsTarget

    return DynamicsTarget(client_for(connection), name=connection.name,
                          writeback=writeback_columns(connection.options),
                          concurrency=connection.dispatch_lanes(4, most=CONCURRENCY_LIMIT))


def _webhooks(connection: Connection) -> WebhookReceiver:
    from billbridge.connectors.dynamics_sales.mapping import MappingConfig
    from billbridge.connectors.dynamics_sales.webhooks import DEFAULT_HEADER, DynamicsWebhooks

    return DynamicsWebhooks(str(connection.credentials.get("webhook_key", "")),
                            client_for(connection), source=connection.name,
                            config=MappingConfig.from_options(connection.options,
                                                              source=connection.name),
                            header=str(connection.options.get("webhook_header")
                                       or DEFAULT_HEADER))


CONNECTOR = ConnectorSpec("dynamics-sales", source=_source, target=_target,
                          webhooks=_webhooks)
