"""QuickBooks Online (ERP): customers, projects (sub-customers), time
activities and invoices out through the batch endpoint; invoice status and
payments back in by polling. See docs/connectors/quickbooks.md.

Connection: ``base_url`` (``https://quickbooks.api.intuit.com`` by default);
credentials ``access_token``, ``refresh_token``, ``client_id``,
``client_secret``; options ``realm_id`` (required), ``minor_version`` (75),
``batch_size`` (30), ``token_url``, ``service_item`` ("Services"),
``income_account`` (an Account Id, to create the service item when it is
missing), ``employees`` and ``tax_codes`` (``a=b,c=d`` or a mapping: worker id
→ Employee Id, canonical tax code → TaxCode Id), ``requests_per_minute``
(500), ``page_size`` (1000), ``dispatch_lanes`` (4: batch calls the
dispatchers send at once, of the realm's 10 concurrent requests; the pace of
40 batches a minute binds long before more would help).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billbridge.connectors.base import Connection, ConnectorSpec, Source, Target
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.quickbooks.client import (
    BATCH_LIMIT,
    DEFAULT_BASE_URL,
    MINOR_VERSION,
    REALM_CONCURRENCY,
    TOKEN_URL,
    QuickBooksClient,
    realm_rate_limit,
)

_CLIENTS: ClientCache[QuickBooksClient] = ClientCache()


def pairs(value: Any) -> dict[str, str]:
    """A mapping option: a mapping, or ``"a=b,c=d"`` text (from the environment)."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if not value:
        return {}
    found = {}
    for part in str(value).split(","):
        key, sep, mapped = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected name=value pairs separated by commas, got {value!r}")
        found[key.strip()] = mapped.strip()
    return found


def client_for(connection: Connection) -> QuickBooksClient:
    """One client per company, shared by the connection's source and target, so
    together they keep within the realm's limits."""
    options, secrets = connection.options, connection.credentials
    realm = str(options.get("realm_id") or "")
    return _CLIENTS.get(
        (connection.name, connection.base_url or DEFAULT_BASE_URL, realm),
        lambda: QuickBooksClient(
            connection.base_url or DEFAULT_BASE_URL, realm,
            access_token=secrets.get("access_token", ""),
            refresh_token=secrets.get("refresh_token", ""),
            client_id=secrets.get("client_id", ""),
            client_secret=secrets.get("client_secret", ""),
            token_url=str(options.get("token_url") or TOKEN_URL),
            minor_version=int(options.get("minor_version") or MINOR_VERSION),
            max_batch=int(options.get("batch_size") or BATCH_LIMIT),
            rate_limit=realm_rate_limit(int(options.get("requests_per_minute") or 500)),
            on_tokens=lambda access, refresh: connection.keep_credentials(
                {"access_token": access, "refresh_token": refresh})))


def _target(connection: Connection) -> Target:
    from billbridge.connectors.quickbooks.directory import Directory
    from billbridge.connectors.quickbooks.target import QuickBooksTarget

    client = client_for(connection)
    options = connection.options
    directory = Directory(client, service_item=str(options.get("service_item") or "Services"),
                          income_account=options.get("income_account") or None,
                          employees=pairs(options.get("employees")))
    return QuickBooksTarget(client, name=connection.name, directory=directory,
                            tax_codes=pairs(options.get("tax_codes")),
                            concurrency=connection.dispatch_lanes(4, most=REALM_CONCURRENCY))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.quickbooks.source import QuickBooksSource

    return QuickBooksSource(client_for(connection), name=connection.name,
                            page_size=int(connection.options.get("page_size") or 1000))


CONNECTOR = ConnectorSpec("quickbooks", source=_source, target=_target)
