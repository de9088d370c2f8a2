"""Every registered vendor that reads records has a contract, and what its
emulator answers is no drift: each vendor's emulator is given a record to
read the way the demo gives it one (a deal won in a CRM, an approved entry in
a time tool, an invoice raised and paid in an ERP), the connector's own
source reads it, and its contract watch must have checked records and heard
no drift. A contract that is wrong about a field the emulator sends (its
name, its type, whether it is always there) fails here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from billbridge.connectors.base import OutboundCommand, ResultStatus, Source
from billbridge.connectors.contracts import ContractWatch, Drift
from billbridge.connectors.registry import VENDORS, connector
from billbridge.demo import vendors as demo
from billbridge.demo.vendors import ALICE, GLOBEX, INITECH, Entry

NO_CONTRACT = {"filedrop": "its acknowledgement and status files are billbridge's own "
                           "layout (docs/connectors/filedrop.md), not a vendor's records"}
"""Registered vendors that read no vendor records, and why."""
MODES = {"sage-intacct-rest": "sage-intacct"}
"""The demo's ERPs that are a vendor read over its other API, each with its contract."""

ENTRY = Entry(4, ALICE, INITECH.code, Decimal(4))


def _read(source: Source) -> tuple[ContractWatch, list[Drift]]:
    contracts: ContractWatch | None = getattr(source, "contracts", None)
    assert contracts is not None, f"{source.name}: its source checks no contract"
    heard: list[Drift] = []
    contracts.observer = heard.append
    for _page in source.poll(None):
        pass
    return contracts, heard


def _source(entry: Any) -> Source:
    connection = entry.connection()
    make = connector(connection.vendor).source
    assert make is not None
    return make(connection)


def crm(name: str) -> Iterator[Source]:
    system = demo.CRMS[name]()
    try:
        system.win(GLOBEX)
        yield _source(system)
    finally:
        system.stop()


def time_tool(name: str) -> Iterator[Source]:
    tool = demo.TIME_TOOLS[name]()
    try:
        tool.set_up()
        tool.log([ENTRY])
        yield _source(tool)
    finally:
        tool.stop()


def _command(n: int, kind: str, key: str, payload: dict[str, Any],
             refs: dict[str, str] | None = None) -> OutboundCommand:
    return OutboundCommand(n, "erp", kind, f"contracts-{n}", key, payload, refs=refs or {})


def erp(name: str) -> Iterator[Source]:
    """An invoice raised through the ERP's own target, as the hub raises one,
    then paid in the ERP."""
    system = demo.ERPS[name]()
    try:
        connection = system.connection()
        if name == "tryton":  # the demo's 5 s is for a quiet machine; posting takes longer
            connection = replace(connection, options={**connection.options, "timeout": 120})
        spec = connector(connection.vendor)
        assert spec.target is not None
        target = spec.target(connection)
        customer = {"id": "cust_1", "name": GLOBEX.company, "currency": "USD",
                    "billing_country": "US", "tax_id": GLOBEX.tax_id, "legal_entity": "US01"}
        [made] = target.send([_command(1, "customer.upsert", "cust_1", customer)])
        assert made.status is ResultStatus.APPLIED, made
        refs = {"customer:cust_1": str(made.external_id)}
        [project] = target.send([_command(2, "project.upsert", GLOBEX.code, {
            "code": GLOBEX.code, "name": GLOBEX.name, "status": "active",
            "customer": "cust_1"}, refs)])
        assert project.status is ResultStatus.APPLIED, project
        refs[f"project:{GLOBEX.code}"] = str(project.external_id)
        invoice = f"inv_{GLOBEX.code}_2026-03-31"
        [raised] = target.send([_command(3, "invoice.create", invoice, {
            "id": invoice, "customer": "cust_1", "project": GLOBEX.code, "currency": "USD",
            "lines": [{"description": "Development", "quantity": "8", "unit_price": "150",
                       "amount": "1200.00", "tax_code": "US-NOTAX"}],
            "subtotal": "1200.00", "tax": "0", "total": "1200.00"}, refs)])
        assert raised.status is ResultStatus.APPLIED, raised
        held = system.invoices()
        assert len(held) == 1, held
        system.pay(held[0])
        yield _source(system)
    finally:
        system.stop()


def generic() -> Iterator[Source]:
    from billbridge.connectors.generic.emulator import TimeSourceEmulator
    from billbridge.connectors.generic.source import GenericTimeSource

    emulator = TimeSourceEmulator()
    emulator.start()
    try:
        emulator.upsert({"id": "te-1", "worker": "w-alice", "project": GLOBEX.code,
                         "task": "dev", "work_date": "2026-03-02", "hours": "8",
                         "billable": True, "notes": "", "status": "approved"})
        yield GenericTimeSource(emulator.url)
    finally:
        emulator.stop()


READERS: dict[str, Callable[[], Iterator[Source]]] = {
    **{name: (lambda n=name: crm(n)) for name in demo.CRMS},
    **{name: (lambda n=name: time_tool(n)) for name in demo.TIME_TOOLS},
    # The demo's ERPs by vendor (its "ledger" is the generic vendor's target) and by
    # API where a vendor has two (MODES).
    **{name: (lambda n=name: erp(n)) for name in demo.ERPS
       if (name in VENDORS or name in MODES) and name not in NO_CONTRACT},
    "generic": generic,
}


def vendors() -> list[Any]:
    # Tryton is a real trytond: posting and paying an invoice takes most of a minute.
    return [pytest.param(v, marks=[pytest.mark.tryton, pytest.mark.deep] if v == "tryton" else [])
            for v in sorted(set(VENDORS) - set(NO_CONTRACT) | set(MODES))]


def test_every_registered_vendor_is_read_here_or_said_to_read_no_records() -> None:
    assert set(READERS) == set(VENDORS) - set(NO_CONTRACT) | set(MODES)


@pytest.mark.parametrize("vendor", vendors())
def test_what_the_emulator_answers_is_no_drift_from_the_contract(vendor: str) -> None:
    reader = READERS[vendor]()
    source = next(reader)
    try:
        contracts, heard = _read(source)
        assert contracts.contract.records, f"{vendor}: its contract declares no record"
        assert contracts.reads > 0, f"{vendor}: nothing was read to check"
        assert "\n".join(f"{d.record_type}: {d.describe()}" for d in heard) == ""
    finally:
        reader.close()
