"""Sage Intacct (ERP) over the XML Web Services gateway: customers,
projects, labour timesheets and AR invoices out (many functions to a
request, each with its ``controlid``, under ``uniqueid``); invoice status
and payments back in (polling ``ARINVOICE``). See
docs/connectors/sage-intacct.md.

Connection: ``base_url`` is the gateway (``https://api.intacct.com``; an
URL without ``/ia/xml/`` gets ``/ia/xml/xmlgw.phtml`` added). Credentials:
``sender_id``, ``sender_password`` (the Web Services sender), ``user_id``,
``company_id``, ``user_password`` (the company's API user). Options:
``requests_per_second`` (5), ``concurrency`` (2), ``dispatch_lanes`` (1),
``uniqueid`` (true), ``timeout`` (60 s), ``batch_size`` (100 functions a
request), ``page_size`` (1000), ``throttle_wait`` (5 s), and the company's
set-up read by ``IntacctSettings.from_options`` (location_id, entities,
employees, revenue_account, tax_account, timesheet_state, modified_field,
resend_lookup). ``api`` = ``rest`` speaks the REST API instead
(``rest_target``; credentials ``client_id``, ``client_secret``, ``username``).
"""

from __future__ import annotations

from billbridge.connectors.base import Connection, ConnectorSpec, RateLimit, Source, Target
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.sage_intacct.client import (
    DEFAULT_ENDPOINT,
    GATEWAY_PATH,
    IntacctClient,
)

_CLIENTS: ClientCache[IntacctClient] = ClientCache()


def gateway_url(base_url: str) -> str:
    base = (base_url or DEFAULT_ENDPOINT).rstrip("/")
    return base if "/ia/xml/" in base else f"{base}{GATEWAY_PATH}"


def client_for(connection: Connection) -> IntacctClient:
    """One client per company and sender, shared by the connection's target
    and source, so that together they keep within the company's limits."""
    secrets, options = connection.credentials, connection.options
    url = gateway_url(connection.base_url)
    per_second = float(options.get("requests_per_second") or 5)
    concurrency = int(options.get("concurrency") or 2)
    return _CLIENTS.get(
        (connection.name, url, secrets.get("company_id"), secrets.get("sender_id")),
        lambda: IntacctClient(
            url, sender_id=secrets.get("sender_id", ""),
            sender_password=secrets.get("sender_password", ""),
            user_id=secrets.get("user_id", ""), company_id=secrets.get("company_id", ""),
            user_password=secrets.get("user_password", ""),
            rate_limit=RateLimit(per_second, 1.0, burst=max(1, concurrency)),
            concurrency=concurrency, uniqueid=str(options.get("uniqueid") or "true").strip().lower()
            in ("1", "true", "yes", "on"),
            throttle_wait=float(options.get("throttle_wait") or 5.0),
            timeout=float(options.get("timeout") or 60.0)))


def _rest(connection: Connection) -> bool:
    """``api``: ``xml`` (the gateway, the default) or ``rest`` (``/ia/api/v1``)."""
    api = str(connection.options.get("api") or "xml").strip().lower()
    if api not in ("xml", "rest"):
        raise ValueError(f"sage-intacct: api is xml or rest, not {api!r}")
    return api == "rest"


def _target(connection: Connection) -> Target:
    from billbridge.connectors.sage_intacct.mapping import IntacctSettings
    from billbridge.connectors.sage_intacct.target import IntacctTarget

    limit = int(connection.options.get("concurrency") or 2)
    if _rest(connection):
        from billbridge.connectors.sage_intacct.rest_target import rest_target

        return rest_target(connection, IntacctSettings.from_options(connection.options),
                           connection.dispatch_lanes(1, most=limit))
    return IntacctTarget(client_for(connection),
                         IntacctSettings.from_options(connection.options),
                         name=connection.name,
                         max_batch=int(connection.options.get("batch_size") or 100),
                         concurrency=connection.dispatch_lanes(1, most=limit))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.sage_intacct.mapping import IntacctSettings
    from billbridge.connectors.sage_intacct.source import IntacctInvoiceSource

    if _rest(connection):
        from billbridge.connectors.sage_intacct.rest_target import rest_source

        return rest_source(connection, IntacctSettings.from_options(connection.options))
    return IntacctInvoiceSource(client_for(connection),
                                IntacctSettings.from_options(connection.options),
                                name=connection.name,
                                page_size=int(connection.options.get("page_size") or 1000))


CONNECTOR = ConnectorSpec("sage-intacct", source=_source, target=_target)
