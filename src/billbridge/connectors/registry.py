"""Connector registration: one line per vendor. The engine, the API and the
CLI find a vendor's source, target and webhook door here and nowhere else."""

from __future__ import annotations

import importlib
import os

from billbridge.connectors.base import (
    Connection,
    ConnectorSpec,
    Source,
    Target,
    WebhookReceiver,
)

VENDORS: dict[str, str] = {
    "generic": "billbridge.connectors.generic",
    "harvest": "billbridge.connectors.harvest",
    "hubspot": "billbridge.connectors.hubspot",
    "netsuite": "billbridge.connectors.netsuite",
    "salesforce": "billbridge.connectors.salesforce",
    "quickbooks": "billbridge.connectors.quickbooks",
    "kantata": "billbridge.connectors.kantata",
    "replicon": "billbridge.connectors.replicon",
    "xero": "billbridge.connectors.xero",
    "tryton": "billbridge.connectors.tryton",
    "dynamics-sales": "billbridge.connectors.dynamics_sales",
    "dynamics-finance": "billbridge.connectors.dynamics_finance",
    "sage-intacct": "billbridge.connectors.sage_intacct",
    "csv": "billbridge.connectors.timesheet_files",
    "oracle-fusion": "billbridge.connectors.oracle_fusion",
    "sap-s4hana": "billbridge.connectors.sap_s4hana",
    "filedrop": "billbridge.connectors.filedrop",
    "tempo": "billbridge.connectors.tempo",
}


def connector(vendor: str) -> ConnectorSpec:
    if vendor not in VENDORS:
        raise ValueError(f"unknown vendor {vendor!r}; known: {', '.join(sorted(VENDORS))}")
    spec: ConnectorSpec = importlib.import_module(VENDORS[vendor]).CONNECTOR
    return spec


def parse_connection(spec: str) -> Connection:
    """``NAME=URL`` (the generic vendor) or ``NAME=VENDOR+URL``. Credentials and
    options come from ``BILLBRIDGE_<NAME>_<KEY>`` environment variables, e.g.
    ``BILLBRIDGE_LEDGER_TOKEN``."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"expected NAME=URL or NAME=VENDOR+URL, got {spec!r}")
    vendor, plus, url = rest.partition("+")
    if not plus:
        vendor, url = "generic", rest
    settings = environment_options(name)
    return Connection(name, vendor, url, credentials=settings, options=settings)


def environment_options(name: str) -> dict[str, str]:
    """A connection's settings from ``BILLBRIDGE_<NAME>_<KEY>`` environment
    variables, by lower-case key."""
    prefix = f"BILLBRIDGE_{name.upper().replace('-', '_')}_"
    return {k[len(prefix):].lower(): v for k, v in os.environ.items() if k.startswith(prefix)}


def build_target(spec: str) -> Target:
    connection = parse_connection(spec)
    make = connector(connection.vendor).target
    if make is None:
        raise ValueError(f"{connection.vendor} cannot be a delivery target")
    return make(connection)


def build_source(spec: str) -> Source:
    connection = parse_connection(spec)
    make = connector(connection.vendor).source
    if make is None:
        raise ValueError(f"{connection.vendor} cannot be polled")
    return make(connection)


def build_webhooks(connection: Connection) -> WebhookReceiver:
    make = connector(connection.vendor).webhooks
    if make is None:
        raise ValueError(f"{connection.vendor} sends no webhooks")
    return make(connection)
