"""Dynamics 365 Sales webhooks: a service endpoint registered with the
Plug-in Registration Tool, with a step on the opportunity's messages.

Dataverse signs nothing: the endpoint's only proof is a shared key, sent as
an HTTP header (authentication ``HttpHeader``, the header name is a setting)
or as ``?code=`` (``WebhookKey``). A delivery without the configured key is
refused (``SignatureError``, which the hub counts and answers 401); the key is
compared in constant time. Nothing in the body is trusted: the
``RemoteExecutionContext`` only says which row changed, and the row is read
again from the Web API before it becomes an event (the hub runs receivers in
its worker threads, off the event loop). With no timestamp to check there is
no replay window; a replayed delivery re-reads the row and yields the event
id already stored (opportunity id and row version).
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qs, urlsplit

from billbridge.connectors.base import Malformed, SignatureError, WebhookRequest
from billbridge.connectors.dynamics_sales.client import DataverseClient
from billbridge.connectors.dynamics_sales.mapping import GUID, MappingConfig
from billbridge.connectors.dynamics_sales.source import OpportunityEvents
from billbridge.connectors.http import loads

DEFAULT_HEADER = "x-billbridge-key"


class DynamicsWebhooks:
    def __init__(self, key: str, client: DataverseClient, *, source: str = "dynamics-sales",
                 config: MappingConfig | None = None, header: str = DEFAULT_HEADER) -> None:
        self.key = key
        self.client = client
        self.source = source
        self.header = header.lower()
        self.config = config or MappingConfig(source=source)
        self.events_of = OpportunityEvents(client, self.config)
        self.contracts = self.events_of.contracts

    def verify(self, request: WebhookRequest, *, now: float) -> None:
        if not self.key:
            raise SignatureError("no shared key is configured for this Dynamics source: set "
                                 "its webhook_key to the value registered on the service "
                                 "endpoint")
        given = request.header(self.header) or \
            (parse_qs(urlsplit(request.url).query).get("code") or [""])[0]
        if not given:
            raise SignatureError(f"the delivery carries no key (header {self.header} or "
                                 "?code=)")
        if not hmac.compare_digest(given.encode(), self.key.encode()):
            raise SignatureError("the delivery's key does not match the configured one")

    def events(self, request: WebhookRequest) -> list[Any]:
        try:
            context = loads(request.body)
        except ValueError:
            return [Malformed(request.body.decode(errors="replace"),
                              "Dynamics webhook body is not JSON")]
        if not isinstance(context, dict):
            return [Malformed(context, "Dynamics webhook body is not a RemoteExecutionContext")]
        entity = str(context.get("PrimaryEntityName") or "")
        row_id = str(context.get("PrimaryEntityId") or "")
        if entity != "opportunity" or context.get("MessageName") == "Delete":
            return []  # only opportunities become events; a deletion has none (see docs)
        if not GUID.match(row_id):
            return [Malformed(context, f"Dynamics webhook: PrimaryEntityId {row_id!r} is not "
                              "a GUID")]
        row = self.client.row("opportunities", row_id, self.config.opportunity_columns())
        if row is None:
            return []  # deleted since the step ran
        return self.events_of.for_rows([row])
