"""Oracle Fusion Cloud ERP (REST), ERP: customers, projects, labour costs and
invoices out (``hubOrganizations``, ``projects``, ``unprocessedProjectCosts``
and ``receivablesInvoices``; batches where documented, a resend looked up by
its reference before it is written again); invoice status and receipts back
in (polling by ``LastUpdateDate``). See docs/connectors/oracle-fusion.md.

Connection: ``base_url`` is the pod's root URL (``https://<host>``; the
resources' ``/fscmRestApi/...`` and ``/crmRestApi/...`` paths are added).
Credentials: ``username``, ``password`` (HTTP Basic). Options:
``requests_per_minute`` (600), ``concurrency`` (4), ``dispatch_lanes`` (2),
``batch_size`` (100), ``page_size`` (500), ``batch_media_type``,
``timeout``, and the pod's set-up read by ``OracleSettings.from_options``
(business_unit, transaction sources, expenditure type, tax_codes,
invoice_status, upsert_mode, use_batch, field names).
"""

from __future__ import annotations

from billbridge.connectors.base import Connection, ConnectorSpec, Source, Target
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.oracle_fusion.client import (
    BATCH,
    CONCURRENCY,
    PAGE_SIZE,
    OracleClient,
    oracle_rate_limit,
)

_CLIENTS: ClientCache[OracleClient] = ClientCache()


def client_for(connection: Connection) -> OracleClient:
    """One client per pod and user, shared by the connection's target and
    source, so that together they keep within the configured limits."""
    secrets, options = connection.credentials, connection.options
    username = str(secrets.get("username") or "")
    url = connection.base_url.rstrip("/")
    return _CLIENTS.get((connection.name, url, username), lambda: OracleClient(
        url, username=username, password=str(secrets.get("password") or ""),
        rate_limit=oracle_rate_limit(int(options.get("requests_per_minute") or 600)),
        concurrency=int(options.get("concurrency") or CONCURRENCY),
        page_size=int(options.get("page_size") or PAGE_SIZE),
        batch_media_type=str(options.get("batch_media_type") or BATCH),
        timeout=float(options.get("timeout") or 30.0)))


def _target(connection: Connection) -> Target:
    from billbridge.connectors.oracle_fusion.mapping import OracleSettings
    from billbridge.connectors.oracle_fusion.target import OracleTarget

    limit = int(connection.options.get("concurrency") or CONCURRENCY)
    return OracleTarget(client_for(connection), OracleSettings.from_options(connection.options),
                        name=connection.name,
                        max_batch=int(connection.options.get("batch_size") or 100),
                        concurrency=connection.dispatch_lanes(max(1, limit // 2), most=limit))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.oracle_fusion.mapping import OracleSettings
    from billbridge.connectors.oracle_fusion.source import OracleInvoiceSource

    return OracleInvoiceSource(client_for(connection),
                               OracleSettings.from_options(connection.options),
                               name=connection.name)


CONNECTOR = ConnectorSpec("oracle-fusion", source=_source, target=_target)
