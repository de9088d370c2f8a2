"""The official ``hubspot-api-client`` (12), unchanged, against the emulator:
if HubSpot's own SDK can read, search and batch-update through it, the
emulator's paths and JSON shapes are HubSpot's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hubspot import Client  # type: ignore[import-untyped]
from hubspot.crm.companies import (  # type: ignore[import-untyped]
    BatchInputSimplePublicObjectBatchInput as CompanyBatchInput,
)
from hubspot.crm.companies import (
    SimplePublicObjectBatchInput as CompanyUpdate,
)
from hubspot.crm.deals import (  # type: ignore[import-untyped]
    BatchInputSimplePublicObjectBatchInput,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
)
from hubspot.crm.deals.exceptions import ApiException  # type: ignore[import-untyped]

from billbridge.connectors.hubspot.emulator import HubSpotEmulator
from billbridge.connectors.hubspot.mapping import to_ms

TOKEN = "contract-token"


@pytest.fixture
def hubspot() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN) as emulator:
        emulator.seed(
            companies=[{"id": "501", "properties": {"name": "Globex LLC", "country": "US"}}],
            deals=[{"id": str(i), "properties": {
                "dealname": f"Deal {i}", "amount": str(1000 * i), "dealstage": "closedwon",
                "pipeline": "default", "closedate": "2026-03-01T09:00:00Z"}}
                for i in range(1, 6)],
            associations=[("1", "501")])
        yield emulator  # type: ignore[misc]


@pytest.fixture
def sdk(hubspot: HubSpotEmulator) -> Any:
    return Client.create(access_token=TOKEN, host=hubspot.url)


def test_get_page_follows_paging_and_get_by_id_reads_properties(sdk: Any) -> None:
    first = sdk.crm.deals.basic_api.get_page(limit=2, properties=["dealname", "amount"])
    assert [d.id for d in first.results] == ["1", "2"]
    assert first.results[0].properties["dealname"] == "Deal 1"
    assert first.results[0].created_at is not None and first.results[0].archived is False
    ids = [d.id for d in first.results]
    after = first.paging.next.after
    while after:
        page = sdk.crm.deals.basic_api.get_page(limit=2, after=after, properties=["amount"])
        ids += [d.id for d in page.results]
        after = page.paging.next.after if page.paging else None
    assert ids == ["1", "2", "3", "4", "5"]
    deal = sdk.crm.deals.basic_api.get_by_id("3", properties=["amount", "dealstage"])
    assert deal.properties["amount"] == "3000" and deal.properties["dealstage"] == "closedwon"
    with pytest.raises(ApiException) as missing:
        sdk.crm.deals.basic_api.get_by_id("404")
    assert missing.value.status == 404 and '"category": "OBJECT_NOT_FOUND"' in missing.value.body


def test_search_filters_sorts_and_pages(sdk: Any, hubspot: HubSpotEmulator) -> None:
    since = to_ms(hubspot.get("deals", "2")["properties"]["hs_lastmodifieddate"])
    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="hs_lastmodifieddate",
                                                   operator="GTE", value=str(since))])],
        sorts=["hs_lastmodifieddate"], properties=["dealname", "hs_lastmodifieddate"],
        limit=3)
    page = sdk.crm.deals.search_api.do_search(public_object_search_request=request)
    assert page.total == 4 and [d.id for d in page.results] == ["2", "3", "4"]
    request.after = page.paging.next.after
    rest = sdk.crm.deals.search_api.do_search(public_object_search_request=request)
    assert [d.id for d in rest.results] == ["5"] and rest.paging is None


def test_batch_updates_of_deals_and_companies_round_trip(sdk: Any,
                                                         hubspot: HubSpotEmulator) -> None:
    answer = sdk.crm.deals.batch_api.update(
        batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id="1", properties={"erp_project_id": "P-1"}),
                    SimplePublicObjectBatchInput(id="2", properties={"invoice_status": "paid"})]))
    assert answer.status == "COMPLETE" and {r.id for r in answer.results} == {"1", "2"}
    assert sdk.crm.deals.basic_api.get_by_id(
        "1", properties=["erp_project_id"]).properties["erp_project_id"] == "P-1"
    assert hubspot.get("deals", "2")["properties"]["invoice_status"] == "paid"
    partial = sdk.crm.deals.batch_api.update(
        batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id="3", properties={"erp_project_id": "P-3"}),
                    SimplePublicObjectBatchInput(id="999", properties={"erp_project_id": "X"})]))
    assert partial.num_errors == 1 and partial.errors[0].context == {"ids": ["999"]}
    companies = sdk.crm.companies.batch_api.update(
        batch_input_simple_public_object_batch_input=CompanyBatchInput(
            inputs=[CompanyUpdate(id="501", properties={"erp_customer_id": "C-77"})]))
    assert companies.results[0].properties["erp_customer_id"] == "C-77"
    assert hubspot.get("companies", "501")["properties"]["erp_customer_id"] == "C-77"


def test_a_wrong_token_is_refused_like_hubspot(hubspot: HubSpotEmulator) -> None:
    wrong = Client.create(access_token="nope", host=hubspot.url)
    with pytest.raises(ApiException) as refused:
        wrong.crm.deals.basic_api.get_page(limit=1)
    assert refused.value.status == 401
    assert "INVALID_AUTHENTICATION" in refused.value.body
