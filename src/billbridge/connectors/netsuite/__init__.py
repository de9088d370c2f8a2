"""NetSuite (ERP): customers, projects, time bills and invoices out (external-id
upserts, asynchronous batches, markers where a record type has no external
id), invoice status and payments in (SuiteQL polling). See
docs/connectors/netsuite.md.

Connection: ``base_url`` is the account's REST host
(``https://<ACCOUNT_ID>.suitetalk.api.netsuite.com``); credentials
``consumer_key``, ``consumer_secret``, ``token_id``, ``token_secret`` (TBA);
options ``account`` (the realm; derived from the host when absent),
``concurrency`` (read from ``governanceLimits`` when absent),
``dispatch_lanes`` (the calls the dispatchers send at once: by default one
fewer than ``concurrency``, or than the tier base of 5, which leaves a request
for the invoice and payment polling that shares the account),
``requests_per_second``, ``marker_types``, ``async_threshold``,
``job_first_wait``, ``job_poll``, ``job_timeout`` and the mapping's
``subsidiary``, ``service_item``, ``currencies``, ``job_statuses``,
``employees``, ``timezone``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from billbridge.connectors.base import Connection, ConnectorSpec, RateLimit, Source, Target
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.netsuite.client import TIER_BASE_CONCURRENCY, JobTiming, NetSuiteClient
from billbridge.connectors.netsuite.mapping import MappingConfig
from billbridge.connectors.netsuite.tba import TbaCredentials

_CLIENTS: ClientCache[NetSuiteClient] = ClientCache()


def account_from_host(base_url: str) -> str:
    """``1234567-sb1.suitetalk.api.netsuite.com`` → ``1234567_SB1`` (the realm)."""
    host = urlsplit(base_url).hostname or ""
    if not host.endswith(".netsuite.com"):
        raise ValueError(f"netsuite: cannot tell the account from {base_url!r}; set the "
                         "connection's account option (e.g. 1234567_SB1)")
    return host.split(".", 1)[0].replace("-", "_").upper()


def options_of(connection: Connection) -> dict[str, Any]:
    """Options as given, with JSON strings (from environment variables) decoded."""
    out: dict[str, Any] = {}
    for key, value in connection.options.items():
        if isinstance(value, str) and value[:1] in "{[":
            value = json.loads(value)
        out[key] = value
    return out


def client_for(connection: Connection) -> NetSuiteClient:
    """One client per account, shared by the connection's target and source,
    so that together they keep within the account's concurrency limit."""
    options, secrets = options_of(connection), connection.credentials
    account = str(options.get("account") or account_from_host(connection.base_url))
    rate = float(options.get("requests_per_second", 10))
    defaults = JobTiming()
    return _CLIENTS.get(
        (connection.name, connection.base_url, account),
        lambda: NetSuiteClient(
            connection.base_url,
            TbaCredentials(account, secrets.get("consumer_key", ""),
                           secrets.get("consumer_secret", ""), secrets.get("token_id", ""),
                           secrets.get("token_secret", "")),
            concurrency=_concurrency(options),
            rate_limit=RateLimit(rate, 1, burst=max(1, int(rate))),
            timing=JobTiming(
                first_wait=float(options.get("job_first_wait", defaults.first_wait)),
                poll=float(options.get("job_poll", defaults.poll)),
                timeout=float(options.get("job_timeout", defaults.timeout)))))


def _concurrency(options: Mapping[str, Any]) -> int | None:
    """The account's concurrency limit as the connection gives it; None when
    it does not (the client then reads it from governanceLimits)."""
    value = options.get("concurrency")
    return int(value) if value else None


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value or ()]


def _mapping(options: Mapping[str, Any]) -> MappingConfig:
    return MappingConfig.from_options(options)


def _target(connection: Connection) -> Target:
    from billbridge.connectors.netsuite.target import NetSuiteTarget

    options = options_of(connection)
    limit = _concurrency(options) or TIER_BASE_CONCURRENCY
    return NetSuiteTarget(client_for(connection), name=connection.name,
                          config=_mapping(options),
                          marker_types=_names(options.get("marker_types")),
                          async_threshold=int(options.get("async_threshold", 3)),
                          concurrency=connection.dispatch_lanes(max(1, limit - 1), most=limit))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.netsuite.source import NetSuiteInvoiceSource

    return NetSuiteInvoiceSource(client_for(connection), name=connection.name,
                                 config=_mapping(options_of(connection)))


CONNECTOR = ConnectorSpec("netsuite", source=_source, target=_target)
