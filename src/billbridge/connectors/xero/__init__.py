"""Xero (ERP): customers, projects, labour postings and invoices out (Contacts,
tracking options, manual journals and ACCREC invoices, 50 a call); invoice
status and payments back in (polling). See docs/connectors/xero.md.

Connection: ``base_url`` is ``https://api.xero.com/api.xro/2.0`` (an
emulator's root URL gets ``/api.xro/2.0`` added). Credentials:
``tenant_id``, ``access_token``, ``refresh_token``, ``client_id``,
``client_secret``. Options: ``token_url``, ``requests_per_minute`` (60),
``concurrency`` (5), ``dispatch_lanes`` (calls the dispatchers send at once:
two fewer than ``concurrency``, leaving room for the invoice polling and the
tenant's other apps), ``timeout``, ``batch_size`` (50), ``page_size``, and
the organisation's set-up read by ``XeroSettings.from_options`` (tax_types,
account codes, tracking_category, invoice_status, journal_status,
payment_terms_days, base_currency).
"""

from __future__ import annotations

from billbridge.connectors.base import Connection, ConnectorSpec, Source, Target
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.xero.client import DEFAULT_BASE_URL, XeroClient, xero_rate_limit

_CLIENTS: ClientCache[XeroClient] = ClientCache()


def api_url(base_url: str) -> str:
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    return base if "/api.xro/" in base else f"{base}/api.xro/2.0"


def client_for(connection: Connection) -> XeroClient:
    """One client per organisation, shared by the connection's target and
    source, so that together they keep within the tenant's limits."""
    secrets, options = connection.credentials, connection.options
    tenant = str(secrets.get("tenant_id") or options.get("tenant_id") or "")
    url = api_url(connection.base_url)
    concurrency = int(options.get("concurrency", 5))
    return _CLIENTS.get(
        (connection.name, url, tenant),
        lambda: XeroClient(
            url, tenant_id=tenant, access_token=secrets.get("access_token", ""),
            refresh_token=secrets.get("refresh_token", ""),
            client_id=secrets.get("client_id", ""),
            client_secret=secrets.get("client_secret", ""),
            token_url=options.get("token_url") or None,
            rate_limit=xero_rate_limit(int(options.get("requests_per_minute", 60)), concurrency),
            concurrency=concurrency, timeout=float(options.get("timeout", 10.0)),
            on_tokens=lambda access, refresh: connection.keep_credentials(
                {"access_token": access, "refresh_token": refresh})))


def _target(connection: Connection) -> Target:
    from billbridge.connectors.xero.mapping import XeroSettings
    from billbridge.connectors.xero.target import XeroTarget

    limit = int(connection.options.get("concurrency", 5))
    return XeroTarget(client_for(connection), XeroSettings.from_options(connection.options),
                      name=connection.name,
                      max_batch=int(connection.options.get("batch_size", 50)),
                      concurrency=connection.dispatch_lanes(max(1, limit - 2), most=limit))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.xero.source import XeroInvoiceSource

    return XeroInvoiceSource(client_for(connection), name=connection.name,
                             page_size=int(connection.options.get("page_size", 100)))


CONNECTOR = ConnectorSpec("xero", source=_source, target=_target)
