"""What NetSuite owns, read back with SuiteQL: invoice status and payments as
a polled ``Source``, and the time a project was posted for a period (the
reconciliation query).

The invoice poll asks for invoices (``CustInvc``) modified at or after the
cursor, ordered by ``lastmodifieddate, id``; the cursor is the newest
modification seen, ``YYYY-MM-DD HH24:MI:SS`` in the account's time zone.
Paging is by key: after every page the query starts again from the newest
stamp (inclusive), so an invoice paid while we page cannot shift another past
a page boundary; ``offset`` is walked only through a full page sharing one
second. The inbox drops rows read twice at a boundary (same event id).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from billbridge.connectors.base import PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.netsuite.client import SUITEQL_PAGE, NetSuiteClient, sql_literal
from billbridge.connectors.netsuite.contract import CONTRACT
from billbridge.connectors.netsuite.mapping import (
    SUITEQL_STAMP,
    MappingConfig,
    external_id,
    invoice_event,
)
from billbridge.connectors.paging import PageGuard

EPOCH = "1970-01-01 00:00:00"


def invoice_query(since: str) -> str:
    return ("SELECT id, externalid, status, foreigntotal, foreignamountunpaid, "
            f"TO_CHAR(lastmodifieddate, '{SUITEQL_STAMP}') AS modified FROM transaction "
            f"WHERE type = 'CustInvc' AND lastmodifieddate >= "
            f"TO_TIMESTAMP({sql_literal(since)}, '{SUITEQL_STAMP}') "
            "ORDER BY lastmodifieddate, id")


class NetSuiteInvoiceSource:
    """Invoice status changes and payments → ``invoice.status_changed``."""

    def __init__(self, client: NetSuiteClient, *, name: str = "netsuite",
                 config: MappingConfig | None = None, page_size: int = SUITEQL_PAGE) -> None:
        self.name = name
        self.client = client
        self.config = config or MappingConfig()
        self.page_size = max(1, min(page_size, SUITEQL_PAGE))
        self.contracts = ContractWatch(CONTRACT)

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        since, offset = cursor or EPOCH, 0
        guard = PageGuard(f"{self.name}: invoices")
        while True:
            guard.once((since, offset), f"from {since} offset {offset}")
            page = self.client.suiteql(invoice_query(since), limit=self.page_size,
                                       offset=offset)
            rows = [r for r in page.get("items") or [] if isinstance(r, dict)]
            if not rows:
                return
            events = [e for e in (name_drift(invoice_event(r, self.config, source=self.name),
                                             self.contracts.read("transaction", r))
                                  for r in rows) if e is not None]
            stamps = [str(r["modified"]) for r in rows if r.get("modified")]
            newest = max([since, *stamps])
            yield PollPage(events, newest)
            if not page.get("hasMore"):
                return
            if newest > since:
                since, offset = newest, 0  # keyset: start again from the newest stamp
            else:
                offset += len(rows)  # a whole page in one second: walk it


@dataclass(frozen=True, slots=True)
class PostedTime:
    """One time bill as NetSuite holds it."""

    internal_id: str
    external_id: str | None
    work_date: date
    hours: Decimal
    rate: Decimal
    billable: bool
    reversed: bool
    memo: str

    @property
    def amount(self) -> Decimal:
        return (self.hours * self.rate).quantize(Decimal("0.01"))


def posted_time(client: NetSuiteClient, project_code: str, start: date, end: date,
                config: MappingConfig | None = None) -> list[PostedTime]:
    """What NetSuite posted for a project between two work dates (inclusive):
    the reconciliation query. Two SuiteQL calls: the job's internal id by its
    external id, then its time bills."""
    config = config or MappingConfig()
    job = client.find("job", "externalid", [external_id(project_code)])
    internal = job.get(external_id(project_code))
    if internal is None:
        return []
    rows = client.query_all(
        "SELECT id, externalid, TO_CHAR(trandate, 'YYYY-MM-DD') AS trandate, hours, rate, "
        "isbillable, approvalstatus, memo FROM timebill "
        f"WHERE customer = {sql_literal(internal)} "
        f"AND trandate >= TO_DATE({sql_literal(start.isoformat())}, 'YYYY-MM-DD') "
        f"AND trandate <= TO_DATE({sql_literal(end.isoformat())}, 'YYYY-MM-DD') "
        "ORDER BY trandate, id")
    return [_posted(row, config) for row in rows]


def _posted(row: dict[str, Any], config: MappingConfig) -> PostedTime:
    return PostedTime(internal_id=str(row["id"]), external_id=row.get("externalid"),
                      work_date=date.fromisoformat(str(row["trandate"])),
                      hours=Decimal(str(row.get("hours") or "0")),
                      rate=Decimal(str(row.get("rate") or "0")),
                      billable=row.get("isbillable") == "T",
                      reversed=str(row.get("approvalstatus")) == config.rejected_approval_status,
                      memo=str(row.get("memo") or ""))
