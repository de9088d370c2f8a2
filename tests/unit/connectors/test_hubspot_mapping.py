"""HubSpot deal/company mapping and webhook signature v3, without HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
from hubspot.utils.signature import Signature  # type: ignore[import-untyped]

from billbridge.connectors.base import Malformed, SignatureError, WebhookRequest
from billbridge.connectors.hubspot.mapping import (
    MappingConfig,
    closed_won_event,
    customer_event,
    is_won,
    to_date,
    to_ms,
)
from billbridge.connectors.hubspot.webhooks import sign_v3, verify_v3
from billbridge.domain.events import parse_event

MODIFIED = "2026-03-05T10:00:00.123Z"
MODIFIED_MS = 1772704800123


def deal(**props: Any) -> dict[str, Any]:
    base = {"dealname": "Globex rollout", "amount": "50000", "closedate": "2026-03-01T09:00:00Z",
            "dealstage": "closedwon", "pipeline": "default", "deal_currency_code": "usd",
            "billing_model": "fixed_fee", "legal_entity": "US01",
            "contract_start": "2026-03-02", "contract_end": "2026-09-30",
            "rate_card": "rc-standard", "budget_cap": "45000", "project_code": "GLX-001",
            "hs_lastmodifieddate": MODIFIED}
    base.update(props)
    return {"id": "42", "properties": {k: v for k, v in base.items() if v is not None},
            "createdAt": "2026-02-01T00:00:00Z", "updatedAt": MODIFIED, "archived": False}


def company(**props: Any) -> dict[str, Any]:
    base = {"name": "Globex LLC", "country": "United States", "tax_id": "US-12-3456789",
            "hs_lastmodifieddate": MODIFIED}
    base.update(props)
    return {"id": "501", "properties": {k: v for k, v in base.items() if v is not None}}


def test_a_won_deal_and_its_company_map_to_a_valid_closed_won_event() -> None:
    event = closed_won_event(deal(), company())
    assert isinstance(event, dict)
    assert event["id"] == f"deal:42:{MODIFIED_MS}" and event["type"] == "opportunity.closed_won"
    assert event["at"] == "2026-03-05T10:00:00.123000Z"
    parsed = parse_event(event)
    data = parsed.data
    assert data["opportunity"]["amount"] == "50000" and data["opportunity"]["currency"] == "USD"
    assert data["opportunity"]["close_date"] == "2026-03-01"
    expected = {"id": "501", "name": "Globex LLC", "currency": "USD", "billing_country": "US",
                "tax_id": "US-12-3456789", "legal_entity": "US01", "status": "active"}
    assert {k: data["customer"][k] for k in expected} == expected
    contract = data["contract"]
    assert (contract["billing_model"], contract["budget_cap"], contract["start"],
            contract["end"]) == ("fixed_fee", "45000", "2026-03-02", "2026-09-30")
    assert contract["opportunity"] == "42" and contract["customer"] == "501"
    assert data["project"]["code"] == "GLX-001" and data["project"]["name"] == "Globex rollout"


def test_the_field_map_and_won_stage_are_configuration() -> None:
    config = MappingConfig.from_options({
        "field_map": {"project.code": "erp_code", "customer.tax_id": "vat_number"},
        "won_stages": {"enterprise": "stage-won"},
        "pipelines": {"enterprise": ["stage-open", "stage-won"]}})
    event = closed_won_event(deal(pipeline="enterprise", dealstage="stage-won",
                                  erp_code="ENT-9", project_code=None),
                             company(vat_number="GB123", tax_id=None), config)
    assert isinstance(event, dict)
    assert event["data"]["project"]["code"] == "ENT-9"
    assert event["data"]["customer"]["tax_id"] == "GB123"
    assert is_won(deal(pipeline="enterprise", dealstage="stage-open"), config) is False
    assert is_won(deal(), config) is False  # default pipeline's closedwon is not won here


@pytest.mark.parametrize(("props", "reason"), [
    ({"amount": None}, "HubSpot deal 42: missing opportunity.amount (property 'amount')"),
    ({"project_code": ""}, "missing project.code (property 'project_code')"),
    ({"deal_currency_code": None}, "opportunity.currency (property 'deal_currency_code', "
                                   "no default_currency)"),
    ({"billing_model": "barter"}, "HubSpot deal 42: contract.billing_model: Input should be"),
    ({"contract_end": "2026-01-01"}, "end 2026-01-01 is before start 2026-03-02"),
])
def test_an_unmappable_deal_is_malformed_with_a_clear_reason(props: dict[str, Any],
                                                             reason: str) -> None:
    result = closed_won_event(deal(**props), company())
    assert isinstance(result, Malformed)
    assert reason in result.reason
    assert result.event_id == f"deal:42:{MODIFIED_MS}"
    assert result.raw["deal"]["id"] == "42"


def test_unknown_pipelines_and_stages_and_missing_companies_are_malformed() -> None:
    config = MappingConfig()
    stage = is_won(deal(dealstage="mystery"), config)
    assert isinstance(stage, Malformed) and "dealstage 'mystery'" in stage.reason
    pipeline = is_won(deal(pipeline="other"), config)
    assert isinstance(pipeline, Malformed) and "pipeline 'other' is not configured" \
        in pipeline.reason
    assert is_won(deal(dealstage="closedlost"), config) is False
    assert is_won(deal(), config) is True
    no_company = closed_won_event(deal(), None)
    assert isinstance(no_company, Malformed) and "no associated company" in no_company.reason
    bad_country = closed_won_event(deal(), company(country="Atlantis"))
    assert isinstance(bad_country, Malformed) and "billing_country" in bad_country.reason


def test_a_company_maps_to_customer_upserted() -> None:
    config = MappingConfig(default_currency="EUR")
    event = customer_event(company(country="de"), config)
    assert isinstance(event, dict)
    assert event["id"] == f"company:501:{MODIFIED_MS}"
    assert parse_event(event).data["billing_country"] == "DE"
    missing = customer_event(company(name=None))
    assert isinstance(missing, Malformed) and "customer.name" in missing.reason


def test_dates_in_hubspot_shapes() -> None:
    assert to_ms("1772704800123") == MODIFIED_MS and to_ms(MODIFIED) == MODIFIED_MS
    assert to_ms("") is None and to_ms("yesterday") is None
    assert to_date("2026-03-01T23:00:00Z") == "2026-03-01"
    assert to_date("1772704800123") == "2026-03-05"


# -- signature v3 ---------------------------------------------------------------------
URL = "https://hub.example.com/v1/webhooks/hubspot?portal=1"
BODY = b'[{"eventId":1,"subscriptionType":"deal.creation","objectId":42}]'


def request(signature: str, stamp: str, url: str = URL) -> WebhookRequest:
    return WebhookRequest("POST", url, {"x-hubspot-signature-v3": signature,
                                        "x-hubspot-request-timestamp": stamp}, BODY)


def test_signature_v3_matches_hubspots_formula_and_its_sdk() -> None:
    stamp = "1772704800123"
    expected = base64.b64encode(hmac.new(b"secret", b"POST" + URL.encode() + BODY
                                         + stamp.encode(), hashlib.sha256).digest()).decode()
    assert sign_v3("secret", "POST", URL, BODY, stamp) == expected
    assert Signature.get_signature("secret", BODY.decode(), "v3", URL, "POST", stamp) == expected


def test_signature_v3_accepts_good_and_refuses_forged_stale_and_unsigned() -> None:
    now = 1772704800.0
    fresh = str(int(now * 1000) - 1000)
    verify_v3("secret", request(sign_v3("secret", "POST", URL, BODY, fresh), fresh), now=now)
    with pytest.raises(SignatureError, match="does not match"):
        verify_v3("secret", request(sign_v3("other", "POST", URL, BODY, fresh), fresh),
                  now=now)
    old = str(int((now - 301) * 1000))
    with pytest.raises(SignatureError, match="stale"):
        verify_v3("secret", request(sign_v3("secret", "POST", URL, BODY, old), old), now=now)
    ahead = str(int((now + 301) * 1000))
    with pytest.raises(SignatureError, match="future"):
        verify_v3("secret", request(sign_v3("secret", "POST", URL, BODY, ahead), ahead),
                  now=now)
    with pytest.raises(SignatureError, match="not signed"):
        verify_v3("secret", request("", fresh), now=now)
    with pytest.raises(SignatureError, match="no HubSpot app client secret"):
        verify_v3("", request("x", fresh), now=now)
    # HubSpot decodes some URL-encoded characters before signing.
    encoded = URL.replace("portal=1", "portal=a%3Ab")
    signed = sign_v3("secret", "POST", URL.replace("portal=1", "portal=a:b"), BODY, fresh)
    verify_v3("secret", request(signed, fresh, url=encoded), now=now)
