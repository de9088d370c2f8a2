"""Salesforce (CRM): won Opportunities and Accounts in (SOQL polling and
Outbound Messages), ERP ids and invoice status out (upsert by external id).

Connection: ``base_url`` is the login host (``https://login.salesforce.com``
or a My Domain); credentials ``client_id``, ``client_secret``,
``refresh_token`` (and optionally ``access_token``), ``webhook_secret``;
options ``version`` (default 61.0), ``org_id`` (required for Outbound
Messages), ``batch_size``, ``requests_per_second``, ``api_reserve``,
``verify`` (CA file), ``lookback_seconds``, ``field_map``, ``won_stages``, ``default_currency``,
``writeback`` (write-back field → Opportunity field), ``writeback_key`` (default ``Id``).
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
from billbridge.connectors.ratelimit import DailyQuota
from billbridge.connectors.salesforce.client import DEFAULT_VERSION, SalesforceClient


def client_for(connection: Connection) -> SalesforceClient:
    options, secrets = connection.options, connection.credentials
    rate = float(options.get("requests_per_second", 25))
    batch = options.get("batch_size")
    verify = options.get("verify", True)
    if isinstance(verify, str) and verify.lower() in ("true", "false", "1", "0", ""):
        verify = verify.lower() not in ("false", "0")
    return SalesforceClient(
        connection.base_url, client_id=secrets.get("client_id", ""),
        client_secret=secrets.get("client_secret", ""),
        refresh_token=secrets.get("refresh_token", ""),
        access_token=secrets.get("access_token") or None,
        instance_url=options.get("instance_url") or None,
        version=str(options.get("version", DEFAULT_VERSION)),
        rate_limit=RateLimit(rate, 1, burst=max(1, int(rate))),
        quota=DailyQuota(reserve=int(options.get("api_reserve", 0))),
        batch_size=int(batch) if batch else None,
        verify=verify if isinstance(verify, (str, bool)) else True)


def _source(connection: Connection) -> Source:
    from billbridge.connectors.salesforce.mapping import MappingConfig
    from billbridge.connectors.salesforce.source import SalesforceSource

    return SalesforceSource(client_for(connection), name=connection.name,
                            config=MappingConfig.from_options(connection.options,
                                                              source=connection.name),
                            lookback_seconds=float(connection.options.get("lookback_seconds",
                                                                          0)))


def _target(connection: Connection) -> Target:
    from billbridge.connectors.salesforce.mapping import writeback_fields, writeback_key
    from billbridge.connectors.salesforce.target import SalesforceTarget

    return SalesforceTarget(client_for(connection), name=connection.name,
                            writeback=writeback_fields(connection.options),
                            writeback_key=writeback_key(connection.options))


def _webhooks(connection: Connection) -> WebhookReceiver:
    from billbridge.connectors.salesforce.mapping import MappingConfig
    from billbridge.connectors.salesforce.webhooks import SalesforceOutboundMessages

    return SalesforceOutboundMessages(
        str(connection.options.get("org_id", "")), client=client_for(connection),
        secret=connection.credentials.get("webhook_secret", ""),
        config=MappingConfig.from_options(connection.options, source=connection.name))


CONNECTOR = ConnectorSpec("salesforce", source=_source, target=_target, webhooks=_webhooks)
