"""The pieces every connector shares instead of writing again: the page guard
of a paged walk, one client per account, and the closed-won assembly of the
CRM mappings, ISO instants."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from billbridge.connectors.base import Connection, Malformed, OutboundCommand, PermanentError
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.crm import closed_won_event
from billbridge.connectors.fields import MappingError, posting_to_reverse
from billbridge.connectors.paging import PageGuard, stream_cursor


def test_a_page_request_made_twice_stops_the_walk_with_pagination_loop() -> None:
    guard = PageGuard("acme invoices")
    guard.once(("2026-03-01", 0))
    guard.once(("2026-03-01", 100))
    guard.once(("2026-03-02", 0))
    with pytest.raises(PermanentError, match="stopping instead of looping") as raised:
        guard.once(("2026-03-01", 100), "from 2026-03-01 offset 100")
    assert raised.value.code == "PAGINATION_LOOP"
    assert "acme invoices: from 2026-03-01 offset 100 was asked for twice" in str(raised.value)


def test_a_new_walk_takes_a_new_guard() -> None:
    PageGuard("acme").once("after=7")
    PageGuard("acme").once("after=7")  # another walk: no loop


def test_one_client_per_key_built_once() -> None:
    cache: ClientCache[object] = ClientCache()
    built: list[str] = []

    def make(name: str) -> object:
        built.append(name)
        return object()

    first = cache.get(("crm", "https://a", "t1"), lambda: make("a"))
    again = cache.get(("crm", "https://a", "t1"), lambda: make("again"))
    other = cache.get(("crm", "https://a", "t2"), lambda: make("b"))
    assert again is first
    assert other is not first
    assert built == ["a", "b"]


@pytest.mark.parametrize("vendor", ["harvest", "hubspot", "kantata", "netsuite",
                                    "quickbooks", "tempo", "xero"])
def test_a_connections_source_and_target_share_one_client_per_account(vendor: str) -> None:
    import importlib

    package = importlib.import_module(f"billbridge.connectors.{vendor}")
    url = {"netsuite": "https://1234567.suitetalk.api.netsuite.com"}.get(vendor, "")
    credentials = {"access_token": "tok", "token": "tok", "account_id": "42",
                   "tenant_id": "ten"}
    options = {"realm_id": "9", "account": "1234567"}

    def connection(name: str) -> Connection:
        return Connection(f"{name}-{vendor}", vendor, url, credentials=dict(credentials),
                          options=dict(options))

    first = package.client_for(connection("shared"))
    assert package.client_for(connection("shared")) is first
    assert package.client_for(connection("elsewhere")) is not first


PARTS: dict[str, Any] = {
    "customer": {"id": "acct-1", "name": "Globex", "currency": "USD",
                 "billing_country": "US"},
    "opportunity": {"id": "opp-1", "name": "Globex rollout", "amount": "50000",
                    "currency": "USD", "close_date": "2026-03-02"},
    "contract": {"id": "c-opp-1", "billing_model": "time_and_materials", "currency": "USD",
                 "legal_entity": "US01", "start": "2026-03-02", "end": None,
                 "budget_cap": None, "rate_card": "std"},
    "project": {"code": "GLX-001", "name": "Globex rollout"},
}


def test_closed_won_ties_the_parts_to_the_customer_and_the_opportunity() -> None:
    event = closed_won_event(source="crm", event_id="opp:opp-1:1", at="2026-03-02T10:00:00Z",
                             what="CRM opportunity opp-1", raw={"Id": "opp-1"}, **PARTS)
    assert not isinstance(event, Malformed)
    assert (event["type"], event["source"], event["id"], event["at"]) == (
        "opportunity.closed_won", "crm", "opp:opp-1:1", "2026-03-02T10:00:00Z")
    data = event["data"]
    assert data["opportunity"] == {"id": "opp-1", "customer": "acct-1", "name": "Globex rollout",
                                   "amount": "50000", "currency": "USD", "stage": "closed_won",
                                   "close_date": "2026-03-02"}
    assert data["contract"]["id"] == "c-opp-1"
    assert (data["contract"]["customer"], data["contract"]["opportunity"]) == ("acct-1", "opp-1")
    assert data["customer"] == PARTS["customer"]
    assert data["project"] == PARTS["project"]


def test_closed_won_parts_the_model_refuses_are_malformed_naming_the_record() -> None:
    parts = {**PARTS, "contract": {**PARTS["contract"], "billing_model": "barter"}}
    raw = {"Id": "opp-1", "Billing_Model__c": "barter"}
    event = closed_won_event(source="crm", event_id="opp:opp-1:1", at="2026-03-02T10:00:00Z",
                             what="CRM opportunity opp-1", raw=raw, **parts)
    assert isinstance(event, Malformed)
    assert event.reason.startswith("CRM opportunity opp-1: ")
    assert "billing_model" in event.reason
    assert event.raw == raw
    assert event.event_id == "opp:opp-1:1"


def test_settings_are_read_from_option_text_as_each_field_is_annotated() -> None:
    from collections.abc import Mapping
    from dataclasses import dataclass, field

    from billbridge.connectors.fields import settings_from_options

    @dataclass(frozen=True)
    class Pod:
        name: str = "a"
        batch: bool = True
        days: int = 30
        codes: Mapping[str, str] = field(default_factory=dict)

    given = settings_from_options(Pod, {"batch": "off", "days": "14", "codes": '{"X": "Y"}',
                                        "name": "", "other": "ignored"})
    assert given == {"batch": False, "days": 14, "codes": {"X": "Y"}}
    assert Pod(**settings_from_options(Pod, {"batch": "true"})).batch is True


def test_a_command_that_cannot_be_built_is_rejected_with_its_reason() -> None:
    from billbridge.connectors.base import OutboundCommand, RecordResult, ResultStatus
    from billbridge.connectors.fields import MappingError, build_each

    def build(command: OutboundCommand) -> dict[str, Any]:
        if command.id == 2:
            raise MappingError("no tax code", code="UNMAPPED_TAX_CODE")
        if command.id == 3:
            raise ValueError("hours is 'x'")
        return {"n": command.id}

    commands = [OutboundCommand(n, "t", "k", f"key{n}", "a", {}) for n in (1, 2, 3)]
    results: list[RecordResult] = []
    built = build_each(commands, build, results)
    assert [(c.id, r) for c, r in built] == [(1, {"n": 1})]
    assert [(r.idempotency_key, r.status, r.code) for r in results] == [
        ("key2", ResultStatus.REJECTED, "UNMAPPED_TAX_CODE"),
        ("key3", ResultStatus.REJECTED, "MAPPING")]


def _reversal(refs: dict[str, str]) -> OutboundCommand:
    return OutboundCommand(id=1, target="erp", kind="time_charge.reverse", idempotency_key="k",
                           aggregate_key="a", payload={"charge": "c-7"}, refs=refs)


def test_a_reversal_finds_the_posting_the_dispatcher_names_in_its_refs() -> None:
    originals = {"JL-2": {"id": "JL-2"}, "JL-9": {"id": "JL-9"}}
    found = posting_to_reverse(_reversal({"time_charge:c-7": "JL-9"}), originals,
                               what="journal", vendor="Xero")
    assert found == {"id": "JL-9"}


@pytest.mark.parametrize("refs", [{}, {"time_charge:c-7": "JL-404"}])
def test_a_reversal_of_a_posting_the_erp_does_not_hold_is_nothing_to_reverse(
        refs: dict[str, str]) -> None:
    with pytest.raises(MappingError) as caught:
        posting_to_reverse(_reversal(refs), {"JL-2": {}}, what="journal", vendor="Xero")
    assert caught.value.code == "NOTHING_TO_REVERSE"
    assert str(caught.value) == ("charge c-7 has no Xero journal to reverse (it was never "
                                 "posted, or its journal was deleted in Xero)")


def test_a_command_payload_is_its_canonical_record_or_one_line_naming_the_command() -> None:
    from billbridge.connectors.fields import MappingError, command_record, invoice_record
    from billbridge.domain.records import Customer

    record = command_record(Customer, {"id": "c1", "name": "Globex", "currency": "USD",
                                       "billing_country": "US"}, "customer.upsert")
    assert record.name == "Globex"
    with pytest.raises(MappingError, match=r"^customer\.upsert: .*currency"):
        command_record(Customer, {"id": "c1", "name": "Globex", "billing_country": "US"},
                       "customer.upsert")
    with pytest.raises(MappingError, match="invoice inv_1 has no lines"):
        invoice_record({"id": "inv_1", "customer": "c1", "currency": "USD",
                        "subtotal": "0", "tax": "0", "total": "0"})


@pytest.mark.parametrize(("cursor", "streams"), [
    ('{"version": 1, "a": {"since": "x"}, "b": 3}', {"a": {"since": "x"}}),
    ('{"version": 2, "a": {"since": "x"}}', {}),  # another version: start again
    ("not json", {}), (None, {}), ("[1]", {}),
])
def test_a_pollers_cursor_is_its_streams_or_nothing(cursor: str | None,
                                                     streams: dict[str, Any]) -> None:
    assert stream_cursor(cursor, 1) == streams


def test_a_kind_failing_after_an_earlier_kinds_write_answers_retry_instead_of_raising() -> None:
    from billbridge.connectors.base import (
        OutboundCommand,
        RecordResult,
        ResultStatus,
        TransientError,
    )
    from billbridge.connectors.kinds import send_by_kind

    writes = [0]

    def customers(commands: Any) -> list[RecordResult]:
        writes[0] += 1
        return [RecordResult.of(c, ResultStatus.APPLIED, "C1") for c in commands]

    def invoices(_commands: Any) -> list[RecordResult]:
        writes[0] += 1
        raise TransientError("lost", code="CONNECTION")

    batch = [OutboundCommand(2, "t", "invoice.create", "k2", "a", {}),
             OutboundCommand(1, "t", "customer.upsert", "k1", "a", {}),
             OutboundCommand(3, "t", "odd.kind", "k3", "a", {})]
    handlers = {"customer.upsert": customers, "invoice.create": invoices}
    results = send_by_kind(batch, handlers, writes=lambda: writes[0], vendor="Acme",
                           order=("customer.upsert", "invoice.create"))
    assert [(r.idempotency_key, r.status, r.code) for r in results] == [
        ("k1", ResultStatus.APPLIED, None), ("k2", ResultStatus.RETRY, "CONNECTION"),
        ("k3", ResultStatus.REJECTED, "UNKNOWN_COMMAND")]
    with pytest.raises(TransientError):  # nothing written before it: the call fails whole
        send_by_kind(batch[:1], handlers, writes=lambda: writes[0], vendor="Acme")


def test_a_command_payload_that_is_not_its_record_is_a_mapping_error_naming_the_command(
        ) -> None:
    from billbridge.connectors.fields import MappingError, command_record
    from billbridge.domain.records import Customer

    good = command_record(Customer, {"id": "c1", "name": "Globex", "currency": "USD",
                                     "billing_country": "US"}, "customer.upsert")
    assert (good.id, good.billing_country) == ("c1", "US")
    with pytest.raises(MappingError) as refused:
        command_record(Customer, {"id": "c1", "name": "Globex", "currency": "USD",
                                  "billing_country": "USA"}, "customer.upsert")
    assert str(refused.value).startswith("customer.upsert: ")
    assert "billing_country" in str(refused.value) and refused.value.code == "MAPPING"


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-03-05T10:00:00Z", datetime(2026, 3, 5, 10, tzinfo=UTC)),
    (" 2026-03-05T12:00:00+02:00 ", datetime(2026, 3, 5, 10, tzinfo=UTC)),
    ("2026-03-05T10:00:00", datetime(2026, 3, 5, 10, tzinfo=UTC)),
    ("", None), (None, None), ("yesterday", None), (1772704800, None)])
def test_an_iso_instant_is_read_as_aware_utc_or_none(value: object,
                                                      expected: datetime | None) -> None:
    from billbridge.connectors.fields import instant

    assert instant(value) == expected
    if expected is not None:
        assert instant(value).tzinfo == UTC  # type: ignore[union-attr]


def _invoice(customer: str | None, refs: dict[str, str]) -> OutboundCommand:
    return OutboundCommand(id=1, target="erp", kind="invoice.create", idempotency_key="k",
                           aggregate_key="a", payload={"id": "inv_1", "customer": customer},
                           refs=refs)


def test_an_invoices_customer_is_the_erp_id_the_hub_holds_for_it() -> None:
    from billbridge.connectors.fields import named, required_ref

    command = _invoice("c1", {"customer:c1": "C-0042"})
    assert required_ref(command, "customer", record="Fusion party", code="X") == "C-0042"
    assert named(command, "customer") == "c1"


@pytest.mark.parametrize(("customer", "refs"), [("c1", {}), (None, {"customer:None": "C-1"})])
def test_an_invoice_whose_customer_the_erp_does_not_hold_yet_is_refused_with_the_vendors_code(
        customer: str | None, refs: dict[str, str]) -> None:
    from billbridge.connectors.fields import required_ref

    with pytest.raises(MappingError) as caught:
        required_ref(_invoice(customer, refs), "customer", record="Xero contact",
                     code="CUSTOMER_NOT_IN_XERO")
    assert caught.value.code == "CUSTOMER_NOT_IN_XERO"
    assert str(caught.value) == f"invoice inv_1: customer {customer} has no Xero contact yet"


def test_an_invoice_naming_no_customer_is_a_mapping_error() -> None:
    from billbridge.connectors.fields import named

    with pytest.raises(MappingError, match=r"^invoice inv_1 names no customer$"):
        named(_invoice("", {}), "customer")


def test_a_tax_code_is_the_vendors_code_from_the_connections_map_or_unmapped() -> None:
    from billbridge.connectors.fields import mapped_tax

    table = {"VAT20": "OUTPUT2", "US-NOTAX": "NONE"}
    assert mapped_tax("VAT20", table, vendor_code="Xero TaxType", option="tax_types") == "OUTPUT2"
    assert mapped_tax(None, table, vendor_code="Xero TaxType", option="tax_types") is None
    with pytest.raises(MappingError) as caught:
        mapped_tax("GST", table, vendor_code="Xero TaxType", option="tax_types")
    assert caught.value.code == "UNMAPPED_TAX_CODE"
    assert str(caught.value) == ("tax code 'GST' has no Xero TaxType in the connection's "
                                 "tax_types map (mapped codes: US-NOTAX, VAT20); add it and "
                                 "retry")


def test_a_target_refuses_a_kind_it_has_no_plan_for_as_unknown_command() -> None:
    from billbridge.connectors.erp import plan_of

    plans = {"invoice.create": lambda c: f"planned {c.payload['id']}"}
    assert plan_of(plans, _invoice("c1", {}), vendor="Sage Intacct") == "planned inv_1"
    other = OutboundCommand(id=2, target="erp", kind="psa.writeback", idempotency_key="k2",
                            aggregate_key="a", payload={})
    with pytest.raises(MappingError, match=r"the Sage Intacct target does not handle "
                                           r"psa\.writeback") as caught:
        plan_of(plans, other, vendor="Sage Intacct")
    assert caught.value.code == "UNKNOWN_COMMAND"


@pytest.mark.parametrize(("cursor", "read"), [
    ('{"since": "x"}', {"since": "x"}), ("2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z"),
    (None, {}), ("", {}), ("[1]", {}), ("7", {}),
])
def test_a_pollers_cursor_is_its_json_object_or_an_operators_start_instant(
        cursor: str | None, read: object) -> None:
    from billbridge.connectors.paging import cursor_json

    assert cursor_json(cursor) == read


def test_an_error_answer_is_its_json_object_or_its_status_and_the_start_of_what_it_said() -> None:
    import httpx

    from billbridge.connectors.http import error_object

    assert error_object(httpx.Response(400, json={"message": "no"})) == {"message": "no"}
    assert error_object(httpx.Response(502, text="<html>" + "x" * 300)) == (
        "HTTP_502", ("<html>" + "x" * 300)[:200])
    assert error_object(httpx.Response(409, json=["a" * 300])) == (
        "HTTP_409", str(["a" * 300])[:200])


def test_an_http_part_is_its_first_line_its_headers_and_its_body() -> None:
    from billbridge.connectors.odata import http_part

    assert http_part("\r\nHTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                     "ETag: W/\"1\"\r\n\r\n{\"d\": 1}\r\n") == (
        "HTTP/1.1 201 Created", {"content-type": "application/json", "etag": 'W/"1"'},
        '{"d": 1}')
    assert http_part("HTTP/1.1 204 No Content\n\n") == ("HTTP/1.1 204 No Content", {}, "")
    # No headers: the blank line right after the first line starts the body.
    assert http_part("POST A_Thing HTTP/1.1\n\n{\"a\": 1}") == (
        "POST A_Thing HTTP/1.1", {}, '{"a": 1}')


def test_a_crm_customer_takes_the_records_own_legal_entity_over_the_hint() -> None:
    from billbridge.connectors.fields import crm_customer

    values = {"customer.name": " Globex ", "customer.billing_country": "United States",
              "customer.legal_entity": "US02"}
    record = crm_customer("account", "a1", values.get, currency="usd", legal_entity_hint="US01")
    assert record == {"id": "a1", "name": "Globex", "currency": "USD", "billing_country": "US",
                      "legal_entity": "US02"}
    del values["customer.legal_entity"]
    assert crm_customer("company", "a1", values.get, currency="USD",
                        legal_entity_hint="US01")["legal_entity"] == "US01"  # type: ignore[index]
    refused = crm_customer("company", "7", values.get, currency="US Dollars")
    assert isinstance(refused, str) and refused.startswith("company 7: ")
