"""The Finance emulator and connector held to Finance's documented requests
and answers (tests/dynamics_finance_docs.py), through plain httpx as the
independent client: key URLs, cross-company reads, the filter language's
limits, paging by nextLink, change sets all or none, the request limit's
429, and the client-credentials token."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

import dynamics_finance_docs as docs
from billbridge.connectors.base import OutboundCommand, ResultStatus
from billbridge.connectors.dynamics_finance.client import (
    BATCH_LIMIT,
    MAX_PAGE_SIZE,
    FinanceClient,
    Operation,
    key_segment,
)
from billbridge.connectors.dynamics_finance.emulator import FinanceEmulator
from billbridge.connectors.dynamics_finance.target import FinanceTarget


@pytest.fixture
def finance() -> Iterator[FinanceEmulator]:
    emulator = FinanceEmulator(page_size=2)
    with emulator:
        yield emulator


def token(finance: FinanceEmulator) -> str:
    answer = httpx.post(finance.token_url, data={
        "grant_type": "client_credentials", "client_id": finance.client_id,
        "client_secret": finance.client_secret, "scope": f"{finance.url}/.default"})
    assert answer.status_code == 200 and answer.json()["token_type"] == "Bearer"
    return str(answer.json()["access_token"])


@pytest.fixture
def api(finance: FinanceEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{finance.url}/data", headers={
            "Authorization": f"Bearer {token(finance)}", "OData-Version": "4.0",
            "Accept": "application/json"}) as client:
        yield client


def client_for(finance: FinanceEmulator) -> FinanceClient:
    return FinanceClient(finance.url, tenant=finance.tenant, client_id=finance.client_id,
                         client_secret=finance.client_secret, token_url=finance.token_url)


def test_the_connector_keeps_finances_documented_limits() -> None:
    assert (BATCH_LIMIT, MAX_PAGE_SIZE) == (docs.BATCH_OPERATIONS_LIMIT, docs.MAX_PAGE_SIZE)


def test_a_wrong_secret_gets_no_token_and_no_token_gets_401(finance: FinanceEmulator) -> None:
    refused = httpx.post(finance.token_url, data={
        "grant_type": "client_credentials", "client_id": finance.client_id,
        "client_secret": "wrong", "scope": f"{finance.url}/.default"})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert httpx.get(f"{finance.url}/data/CustomersV3").status_code == 401


def test_reads_return_the_default_company_unless_cross_company(api: httpx.Client) -> None:
    query = {**docs.CROSS_COMPANY_QUERY, "$filter": "dataAreaId eq 'gbsi'"}
    assert [r["CustomerAccount"] for r in api.get("/CustomersV3", params=query).json()[
        "value"]] == ["GB-001"]
    del query["cross-company"]
    assert api.get("/CustomersV3", params=query).json()["value"] == []


def test_a_key_url_names_every_key_field(api: httpx.Client) -> None:
    assert api.get(f"/{docs.KEY_URL}").json()["OrganizationName"] == "Contoso Retail"
    assert api.get(f"/{docs.PARTIAL_KEY_URL}").status_code == 400


def test_the_filter_language_takes_enums_and_wildcards_and_refuses_has_and_in(
        api: httpx.Client) -> None:
    assert api.get("/CustomersV3", params={"$filter": docs.ENUM_FILTER}).status_code == 200
    found = api.get("/CustomersV3", params={"$filter": docs.WILDCARD_FILTER}).json()
    assert [r["CustomerAccount"] for r in found["value"]] == ["US-001"]
    for refused in docs.UNSUPPORTED_FILTERS:
        assert api.get("/CustomersV3", params={"$filter": refused}).status_code == 400


def test_paging_by_next_link_reads_each_row_once(finance: FinanceEmulator) -> None:
    for n in range(5):
        finance.put("CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": f"C-{n}",
                                    "OrganizationName": f"C {n}", "CustomerGroupId": "30",
                                    "SalesCurrencyCode": "USD"})
    client = client_for(finance)
    pages = list(client.pages("CustomersV3", "customers", params={"$orderby": "CustomerAccount"}))
    assert len(pages) == 3 and all("@odata.nextLink" in p for p in pages[:2])
    assert [r["CustomerAccount"] for p in pages for r in p["value"]] == \
        [*(f"C-{n}" for n in range(5)), "US-001"]


def test_a_change_set_applies_all_or_none_and_names_the_request_that_failed(
        finance: FinanceEmulator) -> None:
    client = client_for(finance)

    def customer(account: str, group: str) -> Operation:
        return Operation("PATCH", key_segment("CustomersV3", {
            "dataAreaId": "usmf", "CustomerAccount": account}), {
            "OrganizationName": account, "CustomerGroupId": group, "SalesCurrencyCode": "USD"})

    bad, good = client.batch([[customer("A-1", "30"), customer("A-2", "99")],
                              [customer("B-1", "30")]])
    assert bad.failure is not None and bad.failure.status == 400 and bad.failed_at == 1
    assert "Customer group '99' does not exist" in bad.failure.error()[1]
    assert good.answers is not None and [a.status for a in good.answers] == [204]
    accounts = {c["CustomerAccount"] for c in finance.all("CustomersV3")}
    assert "B-1" in accounts and not {"A-1", "A-2"} & accounts


def test_a_refused_command_is_rejected_and_its_change_set_neighbours_retried(
        finance: FinanceEmulator) -> None:
    target = FinanceTarget(client_for(finance))

    def charge(n: int, project: str) -> OutboundCommand:
        return OutboundCommand(n, "dynamics-finance", "time_charge.post", f"{n:04x}",
                               "project:00000001", {
                                   "id": f"tc_{n}", "time_entry": f"te_{n}", "project": project,
                                   "worker": "w-alice", "work_date": "2026-03-02",
                                   "hours": "2", "rate": "150.00", "amount": "300.00",
                                   "currency": "USD", "billable": True, "config_version": 1,
                                   "source_version": 1})

    results = {r.idempotency_key: r for r in target.send([charge(1, "00000001"),
                                                          charge(2, "NO-SUCH")])}
    assert results["0002"].status is ResultStatus.REJECTED
    assert "Project ID 'NO-SUCH' does not exist" in str(results["0002"].message)
    assert results["0001"].status is ResultStatus.RETRY
    assert finance.all("ProjectHourJournalLines") == []
    [applied] = target.send([charge(1, "00000001")])
    assert applied.status is ResultStatus.APPLIED
    [line] = finance.all("ProjectHourJournalLines")
    assert (line["Hours"], line["SalesPrice"]) == (Decimal("2"), Decimal("150.00"))


def test_more_operations_than_a_batch_holds_are_refused(api: httpx.Client) -> None:
    from billbridge.connectors.dynamics_finance.client import encode_batch

    op = Operation("GET", "CustomersV3")
    content_type, body, _ids = encode_batch("/data", [[op] * (docs.BATCH_OPERATIONS_LIMIT + 1)])
    answer = api.post("/$batch", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == 400
    assert str(docs.BATCH_OPERATIONS_LIMIT) in answer.json()["error"]["message"]


def test_the_request_limit_answers_429_with_retry_after_and_finances_message() -> None:
    with FinanceEmulator(requests_limit=docs.LIMITS["requests"],
                         window_seconds=docs.LIMITS["window_seconds"]) as finance:
        headers = {"Authorization": f"Bearer {token(finance)}"}
        with httpx.Client(base_url=f"{finance.url}/data", headers=headers) as api:
            # The window is counted per user: fill it, then one more.
            bearer = headers["Authorization"].removeprefix("Bearer ")
            finance._windows[bearer] = deque([finance.clock()] * docs.LIMITS["requests"])
            answer = api.get("/CustomersV3")
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.json()["error"]["message"] == docs.REQUESTS_LIMIT_MESSAGE
