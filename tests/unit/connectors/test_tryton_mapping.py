"""The Tryton connector's pure parts: the JSON dialect, error classification,
markers, invoice mapping and status read-back, and how the target splits and
isolates a batch (with a fake client standing in for the server)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billbridge.connectors.base import (
    Malformed,
    OutboundCommand,
    PermanentError,
    ResultStatus,
    TransientError,
)
from billbridge.connectors.tryton.client import TrytonError, _error, decode, encode
from billbridge.connectors.tryton.mapping import (
    InvoiceTargets,
    MappingError,
    Settings,
    charge_marker,
    invoice_event,
    invoice_values,
    like_prefix,
    live_line,
    timesheet_values,
    totals_differ,
    work_code,
    work_name,
)
from billbridge.connectors.tryton.source import TrytonInvoiceSource, parse_cursor
from billbridge.connectors.tryton.target import TrytonTarget, _waves

SETTINGS = Settings(labour_product=1, revenue_account=100, employees={"w-alice": 7},
                    taxes={"US-NOTAX": (), "GB-VAT20": (3,)})
CHARGE = {"id": "tc_te-1", "time_entry": "te-1", "project": "GLX-001", "task": "dev",
          "worker": "w-alice", "work_date": "2026-03-02", "hours": "7.50", "rate": "175.00",
          "amount": "1312.50", "currency": "USD", "billable": True}


def command(kind: str, payload: dict[str, Any], key: str = "k1", attempt: int = 1,
            refs: dict[str, str] | None = None) -> OutboundCommand:
    return OutboundCommand(1, "tryton", kind, key, "project:GLX-001", payload, "c",
                           refs or {}, attempt)


# -- the wire ------------------------------------------------------------------
def test_money_dates_and_durations_cross_the_wire_as_tryton_tagged_objects() -> None:
    value = {"price": Decimal("175.10"), "day": date(2026, 3, 2),
             "at": datetime(2026, 3, 2, 9, 30, 0, 5), "took": timedelta(hours=7.5),
             "list": [Decimal("0.01")]}
    wire = encode(value)
    assert wire["price"] == {"__class__": "Decimal", "decimal": "175.10"}
    assert wire["took"] == {"__class__": "timedelta", "seconds": 27000.0}
    assert decode(wire) == value
    assert isinstance(decode(wire)["price"], Decimal)


@pytest.mark.parametrize(("error", "kind", "code"), [
    (["UserError", ["The code on party must be unique.", "", None]], TrytonError,
     "TRYTON_USER_ERROR"),
    (["ConcurrencyException", ["Records were modified in the meanwhile"]], TransientError,
     "TRYTON_CONCURRENCY_EXCEPTION"),
    (["RateLimitException", []], TransientError, "TRYTON_RATE_LIMIT_EXCEPTION"),
    (["LoginException", ["password", "Password", "password"]], PermanentError, "TARGET_AUTH"),
    (["sqlite3.OperationalError: database is locked", "Traceback ..."], TransientError,
     "TRYTON_BUSY"),
    (["'NoneType' object has no attribute 'id'", "Traceback ..."], TrytonError,
     "TRYTON_SERVER_ERROR"),
])
def test_tryton_errors_are_classified_by_their_exception_class(
        error: list[Any], kind: type[Exception], code: str) -> None:
    exc = _error("model.party.party.create", error)
    assert type(exc) is kind
    assert getattr(exc, "code", None) == code


def test_a_user_warning_keeps_its_name_so_it_can_be_confirmed() -> None:
    exc = _error("model.account.invoice.post",
                 ["UserWarning", ["9601eb.invoice_taxes", "The invoice lacks default taxes",
                                  ""]])
    assert isinstance(exc, TrytonError)
    assert exc.warning == "9601eb.invoice_taxes"
    assert "lacks default taxes" in str(exc)


# -- markers ---------------------------------------------------------------------
def test_like_patterns_escape_the_wildcards_in_canonical_ids() -> None:
    assert like_prefix("tc_te-1 ") == "tc\\_te-1 %"
    assert like_prefix("100%") == "100\\%%"


def test_a_work_name_carries_its_code_and_gives_it_back() -> None:
    assert work_name("GLX-001", "Globex ERP rollout") == "GLX-001 - Globex ERP rollout"
    assert work_code("GLX-001 - Globex - phase 2") == "GLX-001"


def test_a_timesheet_line_carries_its_exact_marker_and_duration() -> None:
    values = timesheet_values(CHARGE, "abc123", work=5, employee=7, company=1)
    assert values["description"] == "tc_te-1 7.50 h at 175.00 USD [abc123]"
    assert values["description"] == charge_marker(CHARGE, "abc123")
    assert values["duration"] == timedelta(hours=7, minutes=30)
    assert values["date"] == date(2026, 3, 2)


# -- invoices ------------------------------------------------------------------------
INVOICE = {"id": "inv_GLX-001_2026-03-31", "customer": "cust_1", "project": "GLX-001",
           "currency": "USD", "subtotal": "1412.50", "tax": "0.00", "total": "1412.50",
           "lines": [{"description": "te-1 Development", "quantity": "7.50",
                      "unit_price": "175.00", "amount": "1312.50", "tax_code": "US-NOTAX",
                      "source": "tc_te-1"},
                     {"description": "Milestone", "quantity": "1", "unit_price": "100.00",
                      "amount": "100.00", "tax_code": "US-NOTAX", "source": "ms-1"}]}
IDS = InvoiceTargets(party=4, address=9, currency=1, receivable=39, unit=3, journal=2)


def test_an_invoice_keeps_the_hubs_prices_as_decimals_and_sells_time_as_labour() -> None:
    values = invoice_values(INVOICE, SETTINGS, IDS)
    assert (values["reference"], values["party"], values["journal"]) == \
        ("inv_GLX-001_2026-03-31", 4, 2)
    [[_create, [time, fixed]]] = values["lines"]
    assert time["unit_price"] == Decimal("175.00") and time["quantity"] == 7.5
    assert (time["product"], time["unit"], time["account"]) == (1, 3, 100)
    assert "product" not in fixed
    assert time["taxes"] == [["add", []]]


def test_a_tax_code_without_tryton_taxes_is_named() -> None:
    line = {**INVOICE["lines"][0], "tax_code": "DE-VAT19"}  # type: ignore[dict-item]
    with pytest.raises(MappingError, match="tax code 'DE-VAT19' has no Tryton taxes"):
        invoice_values({**INVOICE, "lines": [line]}, SETTINGS, IDS)


def test_totals_that_differ_by_a_cent_are_reported() -> None:
    tryton = {"untaxed_amount": Decimal("1412.50"), "tax_amount": Decimal("0"),
              "total_amount": Decimal("1412.51")}
    assert totals_differ(INVOICE, tryton) == "total 1412.50 (Tryton 1412.51)"
    assert totals_differ(INVOICE, {**tryton, "total_amount": Decimal("1412.5")}) is None


def test_invoice_states_read_back_become_status_events() -> None:
    stamp = datetime(2026, 4, 2, 8, 0, 0, 123)
    posted = {"id": 12, "reference": "inv_GLX-001_2026-03-31", "state": "posted",
              "total_amount": Decimal("2525.00"), "amount_to_pay": Decimal("525.00"),
              "write_date": stamp}
    event = invoice_event(posted, source="tryton")
    assert not isinstance(event, Malformed)
    assert event["data"] == {"invoice": "inv_GLX-001_2026-03-31", "erp_id": "12",
                             "status": "issued", "amount_paid": "2000.00"}
    assert event["at"] == "2026-04-02T08:00:00.000123+00:00"
    assert event["id"] == invoice_event(posted, source="tryton")["id"]  # type: ignore[index]
    paid = invoice_event({**posted, "state": "paid", "amount_to_pay": 0}, source="tryton")
    assert not isinstance(paid, Malformed) and paid["data"]["status"] == "paid"
    assert paid["data"]["amount_paid"] == "2525.00"
    void = invoice_event({**posted, "state": "cancelled"}, source="tryton")
    assert not isinstance(void, Malformed) and void["data"]["status"] == "void"
    draft = invoice_event({**posted, "state": "draft"}, source="tryton")
    assert isinstance(draft, Malformed) and "state 'draft'" in draft.reason


# -- the target's batch, with a fake server ------------------------------------------
class FakeClient:
    """Answers the calls the time-charge path makes; refuses or fails on cue."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.refuse: set[str] = set()  # descriptions whose create Tryton refuses
        self.fail_after_creates: int | None = None
        self.calls: list[str] = []
        self.works = [{"id": 10, "name": "GLX-001 - x", "parent": None, "timesheet_works": [20]},
                      {"id": 11, "name": "dev - Dev", "parent": 10, "timesheet_works": [21]}]

    def context(self) -> dict[str, Any]:
        return {"company": 1}

    def search_read(self, model: str, domain: Sequence[Any], fields: Sequence[str],
                    **_: Any) -> list[dict[str, Any]]:
        self.calls.append(f"{model}.search_read")
        if model == "project.work":
            return self.works
        wanted = set(domain[0][2])
        return [ln for ln in self.lines if ln["description"] in wanted]

    def create(self, model: str, values: Sequence[dict[str, Any]]) -> list[int]:
        self.calls.append(f"{model}.create")
        if self.fail_after_creates is not None and \
                self.calls.count(f"{model}.create") > self.fail_after_creates:
            raise TransientError("connection dropped", code="CONNECTION")
        if any(v["description"] in self.refuse for v in values):
            raise TrytonError("UserError", "duration must be positive", method="create")
        start = len(self.lines)
        self.lines += [{"id": start + i + 1, **v} for i, v in enumerate(values)]
        return [start + i + 1 for i in range(len(values))]


def charges(n: int, attempt: int = 1) -> list[OutboundCommand]:
    return [command("time_charge.post", {**CHARGE, "id": f"tc_te-{i}"}, key=f"k{i}",
                    attempt=attempt, refs={"project:GLX-001": "10"}) for i in range(n)]


def test_a_refused_record_is_isolated_and_the_rest_post() -> None:
    client = FakeClient()
    target = TrytonTarget(client, SETTINGS)  # type: ignore[arg-type]
    batch = charges(8)
    client.refuse = {charge_marker(batch[5].payload, "k5")}
    results = {r.idempotency_key: r for r in target.send(batch)}
    assert results["k5"].status is ResultStatus.REJECTED
    assert results["k5"].code == "TRYTON_USER_ERROR"
    assert sorted(k for k, r in results.items() if r.status is ResultStatus.APPLIED) == \
        sorted(f"k{i}" for i in range(8) if i != 5)
    assert len(client.lines) == 7
    assert {ln["work"] for ln in client.lines} == {21}  # the task's timesheet work


def test_a_resend_finds_its_lines_instead_of_writing_twins() -> None:
    client = FakeClient()
    target = TrytonTarget(client, SETTINGS)  # type: ignore[arg-type]
    target.send(charges(3))
    again = {r.idempotency_key: r for r in target.send(charges(4, attempt=2))}
    assert len(client.lines) == 4
    assert [again[f"k{i}"].external_id for i in range(3)] == ["1", "2", "3"]


def test_time_on_a_project_without_timesheets_is_refused_with_what_to_do() -> None:
    client = FakeClient()
    client.works = [{"id": 10, "name": "GLX-001 - x", "parent": None, "timesheet_works": []}]
    target = TrytonTarget(client, SETTINGS)  # type: ignore[arg-type]
    [result] = target.send(charges(1))
    assert (result.status, result.code) == (ResultStatus.REJECTED, "NO_TIMESHEET_WORK")
    assert "Available on timesheets" in (result.message or "")
    [waiting] = target.send([command("time_charge.post", CHARGE, key="w")])  # no project ref
    assert waiting.status is ResultStatus.RETRY


def test_a_first_send_looks_nothing_up() -> None:
    client = FakeClient()
    target = TrytonTarget(client, SETTINGS)  # type: ignore[arg-type]
    target.send(charges(3))
    assert client.calls == ["project.work.search_read", "timesheet.line.create"]


def test_a_transient_fault_after_a_write_asks_for_a_retry_instead_of_raising() -> None:
    client = FakeClient()
    target = TrytonTarget(client, SETTINGS)  # type: ignore[arg-type]
    client.fail_after_creates = 1
    # The same charge posted twice in a batch: two waves, two creates.
    batch = [command("time_charge.post", {**CHARGE, "id": "tc_a"}, key="a",
                     refs={"project:GLX-001": "10"}),
             command("time_charge.post", {**CHARGE, "id": "tc_a", "hours": "1.00"}, key="b",
                     refs={"project:GLX-001": "10"})]
    results = {r.idempotency_key: r for r in target.send(batch)}
    assert results["a"].status is ResultStatus.APPLIED
    assert results["b"].status is ResultStatus.RETRY
    assert "connection dropped" in (results["b"].message or "")
    # Nothing applied yet: the fault goes up, for the dispatcher's breaker and backoff.
    with pytest.raises(TransientError):
        target.send(charges(2))


def test_waves_keep_two_writes_of_one_charge_apart() -> None:
    batch = [*charges(3), command("time_charge.reverse", {"charge": "tc_te-1"}, key="r")]
    assert [[c.idempotency_key for c in w] for w in _waves(batch)] == \
        [["k0", "k1", "k2"], ["r"]]


def test_the_invoice_cursor_is_a_key_and_a_bad_one_is_refused() -> None:
    assert parse_cursor("2026-04-02T08:00:00.000123|12") == \
        (datetime(2026, 4, 2, 8, 0, 0, 123), 12)
    assert parse_cursor(None) is None
    with pytest.raises(PermanentError, match=re.escape("not 'ISO datetime|id'")):
        parse_cursor("yesterday")


def test_a_source_page_that_does_not_move_stops_instead_of_looping() -> None:
    stamp = datetime(2026, 4, 2, 8, 0)
    row = {"id": 3, "reference": "inv_x", "state": "posted", "total_amount": Decimal(1),
           "amount_to_pay": Decimal(1), "write_date": stamp}

    class Stuck:
        def search_read(self, *_args: Any, **_kwargs: Any) -> list[dict[str, Any]]:
            return [row]

    source = TrytonInvoiceSource(Stuck(), page_size=1)  # type: ignore[arg-type]
    with pytest.raises(PermanentError, match="stopping instead of looping"):
        list(source.poll(f"{stamp.isoformat()}|3"))


def test_a_timesheet_line_is_live_labour_only_with_a_charge_marker_and_counts_its_own_duration(
        ) -> None:
    marker = charge_marker({**CHARGE, "id": "tc_te 1", "hours": "1.33", "rate": "175.00"},
                           "abc123")
    posting = live_line({"id": 7, "description": marker, "duration": timedelta(hours=2)})
    assert posting is not None
    assert (posting.charge, posting.external_id, posting.hours, posting.amount,
            posting.currency) == ("tc_te 1", "7", Decimal("2.00"), Decimal("350.00"), "USD")
    assert live_line({"id": 8, "description": "support call 2 h at the desk [x]",
                      "duration": timedelta(hours=2)}) is None
    assert live_line({"id": 9, "description": marker, "duration": None}) is None
