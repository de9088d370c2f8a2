"""Harvest (time tracking): time entries and expenses in (incremental polling
with deletions found by comparing id sets; Harvest has no webhooks), the
official project code and ERP ids written back to Harvest projects. See
docs/connectors/harvest.md."""

from __future__ import annotations

from billbridge.connectors.base import Connection, ConnectorSpec, Source, Target
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.harvest.client import (
    DEFAULT_BASE_URL,
    HarvestClient,
    harvest_rate_limit,
)
from billbridge.connectors.http import USER_AGENT

_CLIENTS: ClientCache[HarvestClient] = ClientCache()


def client_for(connection: Connection) -> HarvestClient:
    """One client per account and token, shared by the connection's source and
    target, so that together they keep within the token's 100 requests per 15 s.

    Credentials: ``token`` (a personal access token) and ``account_id``.
    Options: ``user_agent`` (Harvest asks for the application's name and a
    contact), ``requests_per_15s`` (100)."""
    creds, options = connection.credentials, connection.options
    token = creds.get("token") or creds.get("access_token", "")
    account = str(creds.get("account_id") or options.get("account_id") or "")
    return _CLIENTS.get(
        (connection.name, connection.base_url or DEFAULT_BASE_URL, token, account),
        lambda: HarvestClient(
            connection.base_url or DEFAULT_BASE_URL, token=token, account_id=account,
            user_agent=str(options.get("user_agent") or USER_AGENT),
            rate_limit=harvest_rate_limit(int(options.get("requests_per_15s", 100)))))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.harvest.mapping import MappingConfig
    from billbridge.connectors.harvest.source import HarvestSource

    options = connection.options
    return HarvestSource(
        client_for(connection), name=connection.name,
        config=MappingConfig.from_options(options, source=connection.name),
        per_page=int(options.get("per_page", 2000)),
        deletion_window_days=int(options.get("deletion_window_days", 35)),
        overlap_seconds=float(options.get("overlap_seconds", 60)),
        start_date=options.get("start_date") or None,
        expenses=str(options.get("expenses", "true")).lower() not in ("false", "0", "no"))


def _target(connection: Connection) -> Target:
    from billbridge.connectors.harvest.target import HarvestTarget

    return HarvestTarget(client_for(connection), name=connection.name)


CONNECTOR = ConnectorSpec("harvest", source=_source, target=_target)
