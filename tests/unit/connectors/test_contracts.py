"""The contract check: one finding per departure, a null value is no drift
unless the field is required, the vendor's metadata is not read, and a
Malformed record names its drift."""

from __future__ import annotations

from billbridge.connectors.base import Malformed
from billbridge.connectors.contracts import (
    Contract,
    ContractWatch,
    Drift,
    DriftKind,
    FieldType,
    check,
    name_drift,
    optional,
    required,
)

DEAL = Contract("crm", "v1", {"Deal": {
    "Id": required(FieldType.STRING), "Amount": optional(FieldType.NUMBER),
    "Won": optional(FieldType.BOOLEAN), "Owner.Name": required(FieldType.STRING),
    "Lines": optional(FieldType.ARRAY)}}, ignored=frozenset({"attributes"}))


def kinds(drift: Drift) -> set[tuple[str, DriftKind]]:
    return {(f.field, f.kind) for f in drift.findings}


def test_a_record_in_the_contracts_shape_has_no_drift() -> None:
    record = {"attributes": {"url": "/x"}, "Id": "1", "Amount": 5.5, "Won": True,
              "Owner": {"Name": "Ann"}, "Lines": []}
    assert not check(DEAL, "Deal", record)


def test_each_departure_is_one_finding_of_its_kind() -> None:
    record = {"Id": "1", "Amount": "5.50", "Won": 1, "Owner": {"Name": None, "Email": "a@b"},
              "Region": "EMEA"}
    drift = check(DEAL, "Deal", record)
    assert kinds(drift) == {("Amount", DriftKind.TYPE_CHANGED), ("Won", DriftKind.TYPE_CHANGED),
                            ("Owner.Name", DriftKind.MISSING_REQUIRED),
                            ("Owner.Email", DriftKind.UNKNOWN_FIELD),
                            ("Lines", DriftKind.MISSING_OPTIONAL),
                            ("Region", DriftKind.UNKNOWN_FIELD)}
    assert drift.sample == record


def test_a_null_optional_field_and_an_empty_relation_are_no_drift() -> None:
    assert not check(DEAL, "Deal", {"Id": "1", "Amount": None, "Won": None, "Owner": None,
                                    "Lines": None})


def test_a_malformed_record_names_its_drift_and_the_observer_hears_it() -> None:
    heard: list[Drift] = []
    watch = ContractWatch(DEAL)
    watch.observer = heard.append
    drift = watch.read("Deal", {"Id": "1", "Owner": {}})
    item = name_drift(Malformed({"Id": "1"}, "Deal 1: missing owner", "deal:1"), drift)
    assert heard == [drift]
    assert item.reason == ("Deal 1: missing owner (vendor drift: required field Owner.Name "
                           "missing; optional field Amount missing; optional field Won "
                           "missing; optional field Lines missing)")
    assert name_drift({"type": "ok"}, drift) == {"type": "ok"}
    assert not watch.read("Other", {"anything": 1})  # a type the contract does not declare
