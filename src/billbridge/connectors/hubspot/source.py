"""HubSpot deals as a polled ``Source``.

Each page is ``POST /crm/v3/objects/deals/search`` with
``hs_lastmodifieddate GTE <cursor ms>`` sorted ascending; the cursor is the
newest ``hs_lastmodifieddate`` seen. Paging is by key: after every page the
search starts again from the newest stamp seen (inclusive), so a deal edited
while we page (it moves to the end) cannot shift another past a page boundary,
and no query ever pages towards the search's 10,000-result cap. ``after`` is
followed only through deals sharing one millisecond; the inbox drops the
deals re-read at a boundary (same event id).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from billbridge.connectors.base import Malformed, PermanentError, PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.hubspot.client import (
    SEARCH_CAP,
    SEARCH_LIMIT,
    HubSpotClient,
    next_after,
)
from billbridge.connectors.hubspot.contract import contract
from billbridge.connectors.hubspot.mapping import (
    MappingConfig,
    closed_won_event,
    customer_event,
    is_won,
    to_ms,
)
from billbridge.connectors.paging import PageGuard


class DealEvents:
    """Deals (as read from HubSpot) → canonical events, fetching what a won
    deal needs: its associated company (associations v4 + one batch read)."""

    def __init__(self, client: HubSpotClient, config: MappingConfig) -> None:
        self.client = client
        self.config = config
        self.contracts = ContractWatch(contract(config))

    def for_deals(self, deals: Sequence[Mapping[str, Any]]) -> list[Any]:
        drifts = [self.contracts.read("deal", d) for d in deals]
        verdicts: list[bool | Malformed] = [name_drift(is_won(d, self.config), drift)
                                            for d, drift in zip(deals, drifts, strict=True)]
        company_of: dict[str, str | None] = {}
        for deal, verdict in zip(deals, verdicts, strict=True):
            if verdict is True:
                ids = self.client.associated_ids("deals", str(deal["id"]), "companies")
                company_of[str(deal["id"])] = ids[0] if ids else None
        wanted = {c for c in company_of.values() if c is not None}
        companies: dict[str, Mapping[str, Any]] = {}
        if wanted:
            for company in self.client.batch_read("companies", sorted(wanted),
                                                  properties=self.config.company_properties()):
                self.contracts.read("company", company)
                companies[str(company["id"])] = company
        events: list[Any] = []
        for deal, verdict, drift in zip(deals, verdicts, drifts, strict=True):
            if isinstance(verdict, Malformed):
                events.append(verdict)
            elif verdict:
                company_id = company_of.get(str(deal["id"]))
                events.append(name_drift(closed_won_event(
                    deal, companies.get(company_id) if company_id else None, self.config),
                    drift))
            # A deal in another known stage (including one leaving closed-won) emits nothing.
        return events

    def for_companies(self, companies: Sequence[Mapping[str, Any]]) -> list[Any]:
        return [customer_event(c, self.config) for c in companies]


class HubSpotSource:
    def __init__(self, client: HubSpotClient, *, name: str = "hubspot",
                 config: MappingConfig | None = None, page_size: int = SEARCH_LIMIT,
                 search_cap: int = SEARCH_CAP) -> None:
        self.name = name
        self.client = client
        self.config = config or MappingConfig(source=name)
        self.page_size = max(1, min(page_size, SEARCH_LIMIT))
        self.search_cap = search_cap
        self.events = DealEvents(client, self.config)
        self.contracts = self.events.contracts

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        since = int(cursor) if cursor else 0
        after: str | None = None
        guard = PageGuard(f"{self.name}: deals search")
        while True:
            guard.once((since, after), f"from {since} after={after}")
            page = self.client.search_modified_since(
                "deals", since, properties=self.config.deal_properties(), after=after,
                limit=self.page_size)
            deals = [d for d in page.get("results") or [] if isinstance(d, dict)]
            if not deals:
                return
            stamps = [to_ms((d.get("properties") or {}).get("hs_lastmodifieddate")) or since
                      for d in deals]
            newest = max(since, *stamps)
            yield PollPage(self.events.for_deals(deals), str(newest))
            offered = next_after(page)
            position = int(after or 0) + len(deals)
            if offered is None and newest == since and int(page.get("total") or 0) > position:
                offered = str(position)  # HubSpot stopped offering pages at its cap
            if offered is None:
                return
            if newest > since:
                since, after = newest, None  # keyset: start again from the newest stamp
                continue
            # A whole page at one millisecond: walk it with ``after``.
            try:
                position = int(offered)
            except ValueError:
                position = 0
            if position + self.page_size > self.search_cap:
                raise PermanentError(f"{self.name}: more than {self.search_cap} deals share "
                                     f"hs_lastmodifieddate {since}; the search cannot page "
                                     "through them", code="SEARCH_CAP")
            after = offered
