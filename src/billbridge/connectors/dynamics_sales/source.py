"""Dynamics 365 Sales opportunities as a polled ``Source``.

Two ways to read incrementally, by the connection's ``change_tracking``:

- **Change tracking** (default): the first read sends
  ``Prefer: odata.track-changes`` and walks every opportunity by
  ``@odata.nextLink``; its last page carries an ``@odata.deltaLink``, which the
  next poll follows to get the rows changed since and ``$deletedEntity`` rows
  for deletions. The cursor is the link to follow next (a nextLink while a
  read is under way, so a crash mid-read resumes at the page it stopped on).
  Delta requests refuse ``$filter``, so won deals (statecode 1) are picked
  here. A delta link Dataverse refuses as expired starts a full re-read; its
  rows carry the event ids already stored (opportunity id and row version),
  so the inbox keeps one of each.
- **modifiedon polling**, for tables without change tracking:
  ``statecode eq 1 and modifiedon ge <cursor>`` ordered by
  ``modifiedon, opportunityid``. ``modifiedon`` has whole seconds, so the
  cursor's own second is read again each time (ties are never skipped; the
  re-read rows are dropped by event id); ``overlap_seconds`` reaches further
  back for rows whose transaction committed late.

Every won opportunity is joined to its account (one read per page for the
page's accounts) and its currency's ISO code (read once per currency).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

from billbridge.connectors.base import Malformed, PermanentError, PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.dynamics_sales.client import (
    DataverseClient,
    DeltaTokenExpired,
)
from billbridge.connectors.dynamics_sales.contract import contract
from billbridge.connectors.dynamics_sales.mapping import (
    MappingConfig,
    closed_won_event,
    format_modifiedon,
    is_won,
    parse_modifiedon,
)
from billbridge.connectors.paging import PageGuard

log = logging.getLogger(__name__)


def is_deleted(row: Mapping[str, Any]) -> bool:
    return "$deletedEntity" in str(row.get("@odata.context") or "") or \
        row.get("reason") == "deleted"


class OpportunityEvents:
    """Opportunity rows (as read from Dataverse) → canonical events, reading
    what a won one needs: its account and its currency's ISO code."""

    def __init__(self, client: DataverseClient, config: MappingConfig) -> None:
        self.client = client
        self.config = config
        self.contracts = ContractWatch(contract(config))
        self._currencies: dict[str, str | None] = {}

    def currency_of(self, currency_id: str) -> str | None:
        return self._currencies.get(currency_id.lower())

    def _learn_currencies(self, ids: Sequence[str]) -> None:
        unknown = sorted({i.lower() for i in ids if i and i.lower() not in self._currencies})
        if not unknown:
            return
        for row in self.client.rows_by_id("transactioncurrencies", "transactioncurrencyid",
                                          unknown, ["isocurrencycode"]):
            code = row.get("isocurrencycode")
            self._currencies[str(row["transactioncurrencyid"]).lower()] = \
                str(code).upper() if code else None
        for currency_id in unknown:
            self._currencies.setdefault(currency_id, None)

    def for_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        drifts = [self.contracts.read("opportunity", r) for r in rows]
        verdicts = [is_won(r) for r in rows]
        won = [r for r, v in zip(rows, verdicts, strict=True) if v is True]
        lookup = self.config.account_lookup
        account_ids = [str(r[lookup]) for r in won if r.get(lookup)]
        accounts = {str(a["accountid"]).lower(): a for a in self.client.rows_by_id(
            "accounts", "accountid", account_ids, self.config.account_columns())} \
            if account_ids else {}
        self.contracts.read_all("account", accounts.values())
        currency_column = (self.config.column("opportunity.currency"),
                           self.config.column("customer.currency"))
        self._learn_currencies([str(row.get(c)) for row in [*won, *accounts.values()]
                                for c in currency_column if row.get(c)])
        events: list[Any] = []
        for row, verdict, drift in zip(rows, verdicts, drifts, strict=True):
            if isinstance(verdict, Malformed):
                events.append(name_drift(verdict, drift))
            elif verdict:
                account = accounts.get(str(row.get(lookup) or "").lower())
                events.append(name_drift(closed_won_event(row, account, self.currency_of,
                                                          self.config), drift))
        return events


class DynamicsSource:
    def __init__(self, client: DataverseClient, *, name: str = "dynamics-sales",
                 config: MappingConfig | None = None, page_size: int = 500,
                 change_tracking: bool = True, overlap_seconds: float = 0.0) -> None:
        self.name = name
        self.client = client
        self.config = config or MappingConfig(source=name)
        self.page_size = page_size
        self.change_tracking = change_tracking
        self.overlap_seconds = overlap_seconds
        self.events = OpportunityEvents(client, self.config)
        self.contracts = self.events.contracts
        self.deleted: list[str] = []  # opportunity ids Dataverse reported deleted
        self.full_reads = 0  # change-tracking reads started from the beginning

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        state = json.loads(cursor) if cursor else {}
        mode = "delta" if self.change_tracking else "modifiedon"
        if state.get("mode") != mode:
            state = {}  # the connection changed its way of reading: start again
        if self.change_tracking:
            yield from self._changes(state.get("link"))
        else:
            yield from self._modified(state.get("since"))

    # -- change tracking ---------------------------------------------------------
    def _changes(self, link: str | None) -> Iterator[PollPage]:
        guard = PageGuard(self.name)
        columns = ",".join(self.config.opportunity_columns())
        while True:
            try:
                if link is None:
                    self.full_reads += 1
                    body = self.client.page("opportunities", "opportunities (track changes)",
                                            params={"$select": columns},
                                            page_size=self.page_size, track_changes=True)
                else:
                    body = self.client.page(link, "opportunities (changes)",
                                            page_size=self.page_size, track_changes=True)
            except DeltaTokenExpired as exc:
                if link is None:
                    raise
                log.warning("%s: %s; reading every opportunity again", self.name, exc)
                link = None
                continue
            rows = [r for r in body["value"] if isinstance(r, dict)]
            self.deleted += [str(r.get("id")) for r in rows if is_deleted(r)]
            events = self.events.for_rows([r for r in rows if not is_deleted(r)])
            following = body.get("@odata.nextLink")
            after = following or body.get("@odata.deltaLink")
            if not after:
                raise PermanentError(f"{self.name}: a change-tracking page carries neither "
                                     "@odata.nextLink nor @odata.deltaLink",
                                     code="PAGINATION_BROKEN")
            yield PollPage(events, json.dumps({"mode": "delta", "link": after}))
            if not following:
                return
            link = str(following)
            guard.once(link, f"the nextLink {link[:120]}", repeat="offered")

    # -- modifiedon polling ------------------------------------------------------
    def _modified(self, since: str | None) -> Iterator[PollPage]:
        condition = "statecode eq 1"
        start = parse_modifiedon(since) if since else None
        if start is not None:
            start -= timedelta(seconds=self.overlap_seconds)
            condition += f" and modifiedon ge {format_modifiedon(start)}"
        query = {"$select": ",".join(self.config.opportunity_columns()),
                 "$filter": condition, "$orderby": "modifiedon asc,opportunityid asc"}
        newest = since
        for body in self.client.pages("opportunities", "opportunities (modifiedon)",
                                      params=query, page_size=self.page_size):
            rows = [r for r in body["value"] if isinstance(r, dict)]
            for row in rows:
                stamp = parse_modifiedon(row.get("modifiedon"))
                if stamp is not None and (newest is None or
                                          stamp > (parse_modifiedon(newest) or stamp)):
                    newest = format_modifiedon(stamp)
            yield PollPage(self.events.for_rows(rows),
                           json.dumps({"mode": "modifiedon", "since": newest}))
