"""Microsoft Dynamics 365 Finance (finance and operations, OData data
entities), ERP: customers, projects, labour postings and invoices out
(``CustomersV3``, projects, project hour journal lines and free-text
invoices, upserts on natural keys and marker look-ups, in ``$batch`` change
sets); invoice status and payments back in (polling by modified date-time).
See docs/connectors/dynamics-finance.md.

Connection: ``base_url`` is the environment's root URL
(``https://<env>.operations.dynamics.com``; ``/data`` is added).
Credentials: ``tenant``, ``client_id``, ``client_secret``. Options:
``token_url`` (default Entra ID's v2.0 endpoint of the tenant), ``scope``
(default ``<base_url>/.default``), ``requests_per_300s`` (6000),
``token_refresh_margin`` seconds (300), ``timeout``, ``batch_size`` (1000
operations, at most 5000), ``page_size`` (1000), ``dispatch_lanes`` (4), and
the environment's set-up read by ``FinanceSettings.from_options`` (company,
companies, entity names and key fields, hour_journal, hour_category, line
properties, revenue_account, tax_groups, payment_invoice_field,
modified_field).
"""

from __future__ import annotations

from billbridge.connectors.base import Connection, ConnectorSpec, Source, Target
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.dynamics_finance.client import (
    CONCURRENCY_LIMIT,
    FinanceClient,
    finance_rate_limit,
)
from billbridge.connectors.odata import account_of, entra_options

_CLIENTS: ClientCache[FinanceClient] = ClientCache()


def client_for(connection: Connection) -> FinanceClient:
    """One client per application, shared by the connection's target and
    source, so that together they keep within its limits."""
    options = connection.options
    return _CLIENTS.get(account_of(connection), lambda: FinanceClient(
        connection.base_url, token_url=options.get("token_url") or None,
        rate_limit=finance_rate_limit(int(options.get("requests_per_300s", 6000))),
        timeout=float(options.get("timeout", 30.0)), **entra_options(connection)))


def _target(connection: Connection) -> Target:
    from billbridge.connectors.dynamics_finance.mapping import FinanceSettings
    from billbridge.connectors.dynamics_finance.target import FinanceTarget

    return FinanceTarget(client_for(connection),
                         FinanceSettings.from_options(connection.options),
                         name=connection.name,
                         max_batch=int(connection.options.get("batch_size") or 1000),
                         concurrency=connection.dispatch_lanes(4, most=CONCURRENCY_LIMIT))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.dynamics_finance.mapping import FinanceSettings
    from billbridge.connectors.dynamics_finance.source import FinanceInvoiceSource

    return FinanceInvoiceSource(client_for(connection),
                                FinanceSettings.from_options(connection.options),
                                name=connection.name,
                                page_size=int(connection.options.get("page_size") or 1000))


CONNECTOR = ConnectorSpec("dynamics-finance", source=_source, target=_target)
