"""SAP S/4HANA Cloud (public edition, OData 2.0 APIs), ERP: business
partners, enterprise projects, timesheet records and debit memo requests
out (found by the hub's reference before a resend writes them again, in
``$batch`` change sets, with the CSRF token dance); billing document status
and clearing back in (polling). See docs/connectors/sap-s4hana.md.

Connection: ``base_url`` is the tenant's API host
(``https://<tenant>-api.s4hana.ondemand.com``; ``/sap/opu/odata/sap`` is
added). Credentials of the communication arrangement: ``user`` and
``password`` (the communication user, Basic auth) or ``client_id`` and
``client_secret`` (OAuth 2.0 client credentials, with the option
``token_url`` and optional ``scope``). Options: ``requests_per_minute``
(600), ``timeout`` (30), ``batch_size`` (200 operations a ``$batch``),
``page_size`` (1000 rows a read), ``dispatch_lanes`` (4) and the tenant's
set-up read by ``SapSettings.from_options``.
"""

from __future__ import annotations

from billbridge.connectors.base import Connection, ConnectorSpec, Source, Target
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.sap_s4hana.client import SapClient, sap_rate_limit

_CLIENTS: ClientCache[SapClient] = ClientCache()


def client_for(connection: Connection) -> SapClient:
    """One client per communication user (or OAuth client), shared by the
    connection's target and source, so together they keep within its limits
    and share its CSRF session."""
    creds, options = connection.credentials, connection.options
    account = (connection.name, connection.base_url,
               str(creds.get("client_id") or creds.get("user") or ""))
    return _CLIENTS.get(account, lambda: SapClient(
        connection.base_url, user=str(creds.get("user", "")),
        password=str(creds.get("password", "")), client_id=str(creds.get("client_id", "")),
        client_secret=str(creds.get("client_secret", "")),
        token_url=str(options.get("token_url") or ""), scope=str(options.get("scope") or ""),
        rate_limit=sap_rate_limit(int(options.get("requests_per_minute") or 600)),
        batch_limit=int(options.get("batch_size") or 200),
        page_size=int(options.get("page_size") or 1000),
        timeout=float(options.get("timeout") or 30.0)))


def _target(connection: Connection) -> Target:
    from billbridge.connectors.sap_s4hana.mapping import SapSettings
    from billbridge.connectors.sap_s4hana.target import SapTarget

    client = client_for(connection)
    return SapTarget(client, SapSettings.from_options(connection.options), name=connection.name,
                     max_batch=client.batch_limit, concurrency=connection.dispatch_lanes(4))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.sap_s4hana.mapping import SapSettings
    from billbridge.connectors.sap_s4hana.source import SapInvoiceSource

    return SapInvoiceSource(client_for(connection),
                            SapSettings.from_options(connection.options), name=connection.name)


CONNECTOR = ConnectorSpec("sap-s4hana", source=_source, target=_target)
