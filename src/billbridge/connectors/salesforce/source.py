"""Salesforce as a polled ``Source``: Accounts become ``customer.upserted``,
won Opportunities ``opportunity.closed_won``.

Each object is read with SOQL ``WHERE SystemModstamp >= <cursor> ORDER BY
SystemModstamp, Id`` and its pages are followed through ``nextRecordsUrl``
(Salesforce's query locator is a server-side snapshot, so a record edited
during the poll cannot shift another past a page boundary). The cursor is
JSON ``{object: newest SystemModstamp stored}`` and is advanced after every
page; because the next poll asks again from that instant inclusively, records
sharing it are re-read, never skipped, and the inbox drops the repeats (event
ids are ``opportunity:{Id}:{SystemModstamp}``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from billbridge.connectors.base import PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.paging import cursor_json
from billbridge.connectors.salesforce.client import DEFAULT_VERSION, SalesforceClient
from billbridge.connectors.salesforce.contract import contract
from billbridge.connectors.salesforce.mapping import (
    SOURCE,
    MappingConfig,
    closed_won_event,
    customer_event,
    format_stamp,
    normal_stamp,
    parse_stamp,
)

OBJECTS = ("Account", "Opportunity")


def decode_cursor(cursor: str | None) -> dict[str, str]:
    value = cursor_json(cursor)
    if isinstance(value, str):
        stamp = normal_stamp(value)  # a bare timestamp: the same for every object
        return {name: stamp for name in OBJECTS} if stamp else {}
    return {str(k): str(v) for k, v in value.items()}


def encode_cursor(state: dict[str, str]) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


class SalesforceSource:
    def __init__(self, client: SalesforceClient, *, name: str = SOURCE,
                 config: MappingConfig | None = None,
                 objects: Sequence[str] = OBJECTS, lookback_seconds: float = 0.0) -> None:
        self.name = name
        self.client = client
        self.config = config or MappingConfig(source=name)
        self.objects = tuple(objects)
        # Ask again this far before the cursor, for transactions that commit with a
        # SystemModstamp older than one already read (the inbox drops the repeats).
        self.lookback = timedelta(seconds=lookback_seconds)
        version = getattr(client, "version", DEFAULT_VERSION)  # (a SOQL-only test has none)
        self.contracts = ContractWatch(contract(self.config, version=f"v{version}"))

    def configure(self, configuration: Any) -> None:
        """Speak the API version the governed configuration pins for this
        connection (``api_versions``), when it pins one."""
        pinned = configuration.api_versions.get(self.name)
        if pinned:
            self.client.version = str(pinned).lstrip("v")
            self.contracts.contract = self.contracts.contract.at_version(f"v{self.client.version}")

    def soql(self, sobject: str, since: str | None) -> str:
        if sobject == "Opportunity":
            fields, conditions = self.config.opportunity_fields(), ["IsWon = true"]
        else:
            fields, conditions = self.config.account_fields(), []
        moment = parse_stamp(since)
        if moment is not None:
            conditions.insert(0, f"SystemModstamp >= {format_stamp(moment - self.lookback)}")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return (f"SELECT {', '.join(fields)} FROM {sobject}{where} "
                "ORDER BY SystemModstamp, Id")

    def _event(self, sobject: str, record: dict[str, Any]) -> Any:
        drift = self.contracts.read(sobject, record)
        if sobject == "Opportunity":
            return name_drift(closed_won_event(record, self.config), drift)
        return name_drift(customer_event(record, self.config), drift)

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        state = decode_cursor(cursor)
        for sobject in self.objects:
            for records in self.client.query_pages(self.soql(sobject, state.get(sobject))):
                if not records:
                    continue
                stamps = [s for s in (normal_stamp(r.get("SystemModstamp")) for r in records)
                          if s is not None]
                if stamps:
                    newest = max(stamps)
                    state[sobject] = max(newest, state.get(sobject) or newest)
                yield PollPage([self._event(sobject, r) for r in records], encode_cursor(state))
