"""Tryton (ERP), the real thing over JSON-RPC: parties, projects with tasks,
timesheet lines and posted customer invoices out; invoice states back in.
See docs/connectors/tryton.md.

Connection: ``base_url`` is the server (``http://host:8000``); credentials
``username`` (default ``admin``) and ``password``; options ``database``
(required), ``company``, ``labour_product`` and ``revenue_account``
(required for invoices), ``employees`` (worker → employee id),
``default_employee``, ``taxes`` (canonical tax code → list of tax ids),
``payment_term``, ``statuses``, ``accept_warnings``, ``max_batch``,
``requests_per_second``, ``timeout``, ``page_size`` (rows a read asks
for: the invoice poll's and the ledger read's). Mappings and lists may
be given as JSON text (as environment variables are).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from billbridge.connectors.base import Connection, ConnectorSpec, RateLimit, Source, Target
from billbridge.connectors.tryton.client import TrytonClient
from billbridge.connectors.tryton.mapping import DEFAULT_STATUSES, Settings


def _option(options: Mapping[str, Any], name: str, default: Any = None) -> Any:
    value = options.get(name, default)
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def _int(options: Mapping[str, Any], name: str) -> int | None:
    value = options.get(name)
    return None if value in (None, "") else int(value)


def client_for(connection: Connection) -> TrytonClient:
    options = connection.options
    if not options.get("database"):
        raise ValueError(f"Tryton connection {connection.name}: the database option is required")
    rate = float(options.get("requests_per_second", 20))
    return TrytonClient(connection.base_url, str(options["database"]),
                        username=connection.credentials.get("username", "admin"),
                        password=connection.credentials.get("password", ""),
                        company=_int(options, "company"),
                        rate_limit=RateLimit(rate, 1, burst=max(1, int(rate))),
                        timeout=float(options.get("timeout", 120)))


def settings_for(connection: Connection) -> Settings:
    options = connection.options
    product, revenue = _int(options, "labour_product"), _int(options, "revenue_account")
    if product is None or revenue is None:
        raise ValueError(f"Tryton connection {connection.name}: labour_product and "
                         "revenue_account are required options")
    taxes = _option(options, "taxes", {})
    return Settings(
        labour_product=product, revenue_account=revenue,
        employees={str(k): int(v) for k, v in _option(options, "employees", {}).items()},
        default_employee=_int(options, "default_employee"),
        taxes={str(k): tuple(int(t) for t in v) for k, v in taxes.items()},
        payment_term=_int(options, "payment_term"),
        statuses={**DEFAULT_STATUSES, **_option(options, "statuses", {})},
        accept_warnings=tuple(_option(options, "accept_warnings",
                                             ["invoice_taxes", "invoice_payment_term"])))


def _target(connection: Connection) -> Target:
    from billbridge.connectors.tryton.target import MAX_BATCH, READ_PAGE, TrytonTarget

    return TrytonTarget(client_for(connection), settings_for(connection), name=connection.name,
                        max_batch=int(connection.options.get("max_batch", MAX_BATCH)),
                        read_page=int(connection.options.get("page_size", READ_PAGE)))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.tryton.source import TrytonInvoiceSource

    return TrytonInvoiceSource(client_for(connection), name=connection.name,
                               page_size=int(connection.options.get("page_size", 100)))


CONNECTOR = ConnectorSpec("tryton", source=_source, target=_target)
