"""Replicon (time, expense and PSA; Deltek): approved timesheets and expense
sheets in (a keyset poll of the list services on last-modified, each changed
sheet read again; approvals and un-approvals are status changes), the ERP's
ids and invoice status out to the project's description. See
docs/connectors/replicon.md.

Connection: ``base_url`` (the tenant's ``applicationRootUrl``, e.g.
``https://na7.replicon.com/acme/``); credentials ``token`` (a bearer token of
``CreateAccessToken2`` or OAuth); options ``workers``, ``projects``,
``tasks`` (mappings, JSON when they come from the environment),
``default_currency``, ``application`` (the ``X-Replicon-Application``
header), ``requests_per_minute`` (500), ``requests_per_hour`` (5000),
``permanent_error_types``, ``page_size`` (100), ``expenses`` (true),
``keep_days`` (400), and the list services' uris
(``timesheets_list_service`` … ``expense_sheets_modified_filter``).
"""

from __future__ import annotations

from billbridge.connectors.base import Connection, ConnectorSpec, Source, Target
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.replicon.client import (
    DEFAULT_BASE_URL,
    PAGE_SIZE,
    REQUESTS_PER_HOUR,
    REQUESTS_PER_MINUTE,
    RepliconClient,
)

_CLIENTS: ClientCache[RepliconClient] = ClientCache()


def _types(value: object) -> tuple[str, ...]:
    return tuple(t.strip() for t in str(value or "").split(",") if t.strip())


def client_for(connection: Connection) -> RepliconClient:
    """One client per tenant and token, shared by the connection's source and
    target, so that together they keep within the tenant's rolling limits."""
    creds, options = connection.credentials, connection.options
    token = creds.get("token") or creds.get("access_token", "")
    base = connection.base_url or DEFAULT_BASE_URL
    return _CLIENTS.get(
        (connection.name, base, token),
        lambda: RepliconClient(
            base, token=token, application=str(options.get("application") or "billbridge"),
            per_minute=int(options.get("requests_per_minute") or REQUESTS_PER_MINUTE),
            per_hour=int(options.get("requests_per_hour") or REQUESTS_PER_HOUR),
            permanent_types=_types(options.get("permanent_error_types")),
            timeout=float(options.get("timeout") or 10.0)))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.replicon.mapping import MappingConfig
    from billbridge.connectors.replicon.source import (
        EXPENSE_SHEETS,
        TIMESHEETS,
        RepliconSource,
        list_spec,
    )

    options = connection.options
    expenses = str(options.get("expenses", "true")).lower() not in ("false", "0", "no")
    return RepliconSource(
        client_for(connection), name=connection.name,
        config=MappingConfig.from_options(options, source=connection.name),
        page_size=int(options.get("page_size") or PAGE_SIZE),
        timesheets=list_spec(options, "timesheets", TIMESHEETS),
        expense_sheets=list_spec(options, "expense_sheets", EXPENSE_SHEETS) if expenses
        else None,
        keep_days=int(options.get("keep_days") or 400))


def _target(connection: Connection) -> Target:
    from billbridge.connectors.replicon.target import RepliconTarget

    return RepliconTarget(client_for(connection), name=connection.name)


CONNECTOR = ConnectorSpec("replicon", source=_source, target=_target)
