"""Replicon's source and target against the emulator over real HTTP: the
keyset walk of the list services (ties at one stamp across pages and polls,
a poll resumed after a crash mid-walk, a page that never ends), sheets read
again on a change (approval, un-approval, an edit after approval, a cell
emptied), an unmapped user kept raw with its reason, throttling, the PSA
write-back, and the billing effects of an un-approval asserted on what the
ERP emulator holds live."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from billbridge.connectors.base import (
    IdempotencyMode,
    Malformed,
    OutboundCommand,
    PermanentError,
    PollPage,
    ResultStatus,
)
from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator
from billbridge.connectors.replicon.client import RepliconClient
from billbridge.connectors.replicon.emulator import RepliconEmulator, Sheet
from billbridge.connectors.replicon.mapping import APPROVED, OPEN, WAITING, MappingConfig
from billbridge.connectors.replicon.source import RepliconSource
from billbridge.connectors.replicon.target import RepliconTarget
from billbridge.emulation.recording import RecordingTarget
from billbridge.engine.clock import SystemClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.reconcile import UNMAPPED_KIND, reconcile
from billbridge.engine.sync import sync
from billbridge.store.tables import exceptions
from conftest import CONFIG as BASE_CONFIG
from conftest import project_event
from fakes import FakeTarget

TOKEN = "replicon-token"
MONDAY = date(2026, 3, 2)
TIE = "2026-03-09T17:00:00.250Z"  # one last-modified stamp shared by several sheets


@pytest.fixture
def replicon() -> Iterator[RepliconEmulator]:
    with RepliconEmulator(token=TOKEN, per_minute=100_000) as em:
        tenant = em.tenant
        tenant.add_user("alice", "Ng, Alice", key=7)
        tenant.add_user("bob", "Ruiz, Bob", key=8)
        tenant.add_user("dave", "Kim, Dave", key=9)
        tenant.add_project("Globex ERP rollout", "GLX-001", key=12)
        tenant.add_task("urn:replicon-tenant:acme:project:12", "Development", key=40)
        yield em  # type: ignore[misc]


def user(key: int) -> str:
    return f"urn:replicon-tenant:acme:user:{key}"


PROJECT = "urn:replicon-tenant:acme:project:12"
CONFIG = MappingConfig(workers={"alice": "w-alice", user(8): "w-bob"},
                       tasks={"urn:replicon-tenant:acme:task:40": "dev"})


def source(em: RepliconEmulator, page_size: int = 2, config: MappingConfig = CONFIG,
           **kwargs: Any) -> RepliconSource:
    client = RepliconClient(em.root, token=TOKEN, per_minute=100_000, per_hour=100_000,
                            **kwargs)
    return RepliconSource(client, config=config, page_size=page_size,
                          now=lambda: datetime(2026, 3, 20, tzinfo=UTC))


def approved_sheet(em: RepliconEmulator, who: int, *days: tuple[int, str], key: Any = None,
                   at: str | None = None) -> Sheet:
    """A week's timesheet with ``hours`` on ``MONDAY + offset``, approved (at ``at``)."""
    tenant = em.tenant
    sheet = tenant.timesheet(user(who), MONDAY, date(2026, 3, 8), key=key)
    for offset, hours in days:
        tenant.log(sheet, PROJECT, date(2026, 3, 2 + offset), Decimal(hours),
                   task="urn:replicon-tenant:acme:task:40")
    tenant.set_status(sheet, WAITING)
    tenant.set_status(sheet, APPROVED, at=at)
    return sheet


def events(pages: Iterator[PollPage]) -> tuple[list[Any], str | None]:
    found: list[Any] = []
    cursor = None
    for page in pages:
        found += page.events
        cursor = page.cursor
    return found, cursor


def upserts(found: list[Any]) -> dict[str, dict[str, Any]]:
    return {e["data"]["id"]: e["data"] for e in found
            if not isinstance(e, Malformed) and e["type"].endswith(".upserted")}


# -- the keyset walk ------------------------------------------------------------------------
def test_sheets_sharing_one_stamp_across_pages_and_polls_are_read_once(
        replicon: RepliconEmulator) -> None:
    for key in range(1, 6):  # five sheets at one stamp, pages of two
        approved_sheet(replicon, 7, (0, "1"), key=key, at=TIE)
    waiting = replicon.tenant.timesheet(user(7), MONDAY, date(2026, 3, 8), key=9)
    replicon.tenant.set_status(waiting, WAITING, at=TIE)  # at the stamp too, never approved
    first, cursor = events(source(replicon).poll(None))
    assert len(first) == len(upserts(first)) == 5
    assert summaries(replicon) == 6  # each sheet read once, though the stamp spans pages
    approved_sheet(replicon, 8, (1, "2"), key=6, at=TIE)  # committed late, at the same stamp
    again, cursor = events(source(replicon).poll(cursor))
    assert [e["data"]["worker"] for e in again] == ["w-bob"]
    assert summaries(replicon) == 7
    assert events(source(replicon).poll(cursor))[0] == []
    assert summaries(replicon) == 7  # the sheets at the boundary are listed, not read again


def summaries(em: RepliconEmulator) -> int:
    return [n for n, _b in em.calls].count("TimesheetService1.GetTimesheetSummary")


def test_a_sheet_changed_during_the_walk_cannot_hide_another(
        replicon: RepliconEmulator) -> None:
    sheets = [approved_sheet(replicon, 7, (0, "1"), key=key) for key in range(1, 6)]
    walk = source(replicon).poll(None)
    first = next(walk)
    replicon.tenant.set_status(sheets[0], OPEN)  # the first sheet moves to the end of the list
    rest, _ = events(walk)
    read = {e["data"]["id"] for e in first.events + rest}
    assert len(read) == 5, read


def test_a_poll_cut_off_mid_walk_resumes_from_its_last_page_missing_nothing(
        replicon: RepliconEmulator) -> None:
    for key in range(1, 6):
        approved_sheet(replicon, 7, (0, "1"), key=key)
    whole, _ = events(source(replicon).poll(None))
    first = next(iter(source(replicon).poll(None)))  # the process dies after one page
    rest, _ = events(source(replicon).poll(first.cursor))
    assert sorted(e["id"] for e in first.events + rest) == sorted(e["id"] for e in whole)
    assert len(first.events) == 2 and len(rest) == 3


def test_a_list_whose_pages_never_end_stops_with_pagination_loop(
        replicon: RepliconEmulator) -> None:
    for key in range(1, 4):
        approved_sheet(replicon, 7, (0, "1"), key=key, at=TIE)
    replicon.ignore_page = True
    with pytest.raises(PermanentError) as raised:
        events(source(replicon).poll(None))
    assert raised.value.code == "PAGINATION_LOOP"


# -- changes of a sheet ---------------------------------------------------------------------
def test_an_unapproval_then_an_edit_and_reapproval_send_what_changed(
        replicon: RepliconEmulator) -> None:
    sheet = approved_sheet(replicon, 7, (0, "8"), (1, "7.5"), (2, "4"))
    first, cursor = events(source(replicon).poll(None))
    assert {d["status"] for d in upserts(first).values()} == {"approved"}
    tenant = replicon.tenant
    tenant.set_status(sheet, OPEN)  # the manager reopens it
    undone, cursor = events(source(replicon).poll(cursor))
    assert [d["status"] for d in upserts(undone).values()] == ["submitted"] * 3
    assert min(d["source_version"] for d in upserts(undone).values()) > \
        max(d["source_version"] for d in upserts(first).values())
    tenant.log(sheet, PROJECT, date(2026, 3, 3), Decimal("6"),
               task="urn:replicon-tenant:acme:task:40")  # edited while open
    edited, cursor = events(source(replicon).poll(cursor))
    assert [(d["work_date"], d["hours"]) for d in upserts(edited).values()] == [
        ("2026-03-03", "6.00")]  # only the cell that changed
    tenant.log(sheet, PROJECT, date(2026, 3, 4), Decimal(0),
               task="urn:replicon-tenant:acme:task:40")  # a cell emptied
    tenant.set_status(sheet, APPROVED)
    again, cursor = events(source(replicon).poll(cursor))
    assert sorted((d["work_date"], d["hours"], d["status"]) for d in upserts(again).values()) \
        == [("2026-03-02", "8.00", "approved"), ("2026-03-03", "6.00", "approved")]
    deleted = [e for e in again if e["type"] == "time_entry.deleted"]
    assert [(e["data"]["id"].endswith("_20260304"), e["data"]["project"]) for e in deleted] \
        == [(True, "GLX-001")]
    assert events(source(replicon).poll(cursor))[0] == []


def test_a_sheet_never_approved_is_not_read_for_its_cells(replicon: RepliconEmulator) -> None:
    tenant = replicon.tenant
    sheet = tenant.timesheet(user(7), MONDAY, date(2026, 3, 8))
    tenant.log(sheet, PROJECT, MONDAY, Decimal(3))
    tenant.set_status(sheet, WAITING)
    assert events(source(replicon).poll(None))[0] == []
    assert "TimesheetService1.GetStandardTimesheet2" not in [n for n, _b in replicon.calls]


def test_an_unmapped_user_is_kept_raw_with_its_reason_and_maps_once_the_mapping_is_fixed(
        replicon: RepliconEmulator) -> None:
    approved_sheet(replicon, 9, (0, "3"))
    approved_sheet(replicon, 7, (0, "8"))
    found, cursor = events(source(replicon).poll(None))
    bad = [e for e in found if isinstance(e, Malformed)]
    assert len(bad) == 1 and "unmapped Replicon user dave (Kim, Dave)" in bad[0].reason
    assert bad[0].raw["owner"]["loginName"] == "dave" and bad[0].raw["cell"]["duration"]
    assert [d["worker"] for d in upserts(found).values()] == ["w-alice"]
    same, cursor = events(source(replicon).poll(cursor))  # read again: the same event id
    assert [e.event_id for e in same if isinstance(e, Malformed)] == [bad[0].event_id]
    sheet = next(s for s in replicon.tenant.timesheets.values() if s.owner == user(9))
    replicon.tenant.set_status(sheet, OPEN)  # taken back while unmapped: still kept raw
    reopened, cursor = events(source(replicon).poll(cursor))
    assert [e.raw["approvalStatus"]["uri"] for e in reopened] == [OPEN]
    replicon.tenant.set_status(sheet, APPROVED)
    fixed = MappingConfig(workers={**CONFIG.workers, "dave": "w-dave"})
    mapped, cursor = events(source(replicon, config=fixed).poll(cursor))
    assert [d["worker"] for d in upserts(mapped).values()] == ["w-dave"]
    assert events(source(replicon, config=fixed).poll(cursor))[0] == []


def test_an_approved_expense_sheet_becomes_expenses_in_its_currency(
        replicon: RepliconEmulator) -> None:
    tenant = replicon.tenant
    sheet = tenant.expense_sheet(user(8), date(2026, 3, 4))
    tenant.expense(sheet, PROJECT, date(2026, 3, 4), Decimal("234.50"), "EUR", code="Hotel")
    tenant.set_status(sheet, APPROVED)
    found, _ = events(source(replicon).poll(None))
    [expense] = upserts(found).values()
    assert (expense["amount"], expense["currency"], expense["category"], expense["worker"],
            expense["status"]) == ("234.5", "EUR", "Hotel", "w-bob", "approved")


def test_throttling_is_ridden_out_in_replicons_envelope(replicon: RepliconEmulator) -> None:
    approved_sheet(replicon, 7, (0, "8"))
    replicon.faults.script(["429", "429", "503"])
    poller = source(replicon, max_retry_wait=0.01)
    with pytest.raises(Exception) as raised:  # the 503 after two throttles: transient
        events(poller.poll(None))
    assert getattr(raised.value, "transient", False)
    found, _ = events(poller.poll(None))
    assert len(upserts(found)) == 1


# -- the write-back -------------------------------------------------------------------------
def writeback(i: int, code: str, fields: dict[str, Any], **payload: Any) -> OutboundCommand:
    return OutboundCommand(i, "psa", "psa.writeback", f"key-{i}", f"project:{code}",
                           {"system": "replicon", "record": code, "fields": fields, **payload})


def test_write_back_finds_the_project_by_code_and_a_resend_after_a_lost_ack_makes_no_twin(
        replicon: RepliconEmulator) -> None:
    target = RepliconTarget(source(replicon).client)
    [done] = target.send([writeback(1, "GLX-001", {"erp_project_id": "L-2"})])
    assert done.status is ResultStatus.APPLIED and done.external_id.endswith(":project:12")
    assert replicon.tenant.project_by_code("GLX-001")["description"] == \
        "-- billbridge --\nERP project: L-2"
    replicon.faults.script(["ok", "lost_ack"])  # the look-up answers, the create's answer is lost
    new = writeback(2, "NEW-002", {"erp_project_id": "L-3"}, project_name="Initech platform")
    with pytest.raises(Exception) as lost:
        target.send([new])
    assert getattr(lost.value, "transient", False)
    [resent] = target.send([new])
    assert resent.status is ResultStatus.APPLIED
    assert [p["code"] for p in replicon.tenant.projects.values()].count("NEW-002") == 1
    [missing] = target.send([writeback(3, "NONE-1", {"erp_project_id": "L-4"})])
    assert missing.status is ResultStatus.REJECTED and missing.code == "PROJECT_NOT_FOUND"


# -- billing effects, on what the ERP holds ---------------------------------------------------
def test_an_unapproval_reverses_at_the_erp_and_a_reapproval_posts_the_edited_hours(
        engine: Engine, replicon: RepliconEmulator) -> None:
    with LedgerEmulator(token="t") as ledger:
        erp = LedgerTarget(ledger.url, "t", idempotency=IdempotencyMode.NATIVE)
        hub = Hub(engine, {"ledger": erp, "crm": FakeTarget("crm"),
                           "replicon": RepliconTarget(source(replicon).client)},
                  settings=HubSettings(routes={"erp": "ledger", "crm": "crm",
                                               "psa": "replicon"}))
        hub.activate_config({**BASE_CONFIG, "psa_system": "replicon"})
        hub.ingest([won_deal()], source="hubspot")
        hub.run_until_idle()
        assert "ERP project: " in replicon.tenant.project_by_code("GLX-001")["description"]
        sheet = approved_sheet(replicon, 7, (0, "8"), (1, "7.5"))
        poller = source(replicon)

        def live() -> dict[str, tuple[Decimal, Decimal]]:
            sync(engine, poller, SystemClock())
            hub.run_until_idle()
            return {p.charge.rsplit("_", 1)[-1]: (p.hours, p.amount)
                    for p in erp.live_postings()}

        assert live() == {"20260302": (Decimal("8.00"), Decimal("1400.00")),
                          "20260303": (Decimal("7.50"), Decimal("1312.50"))}
        replicon.tenant.set_status(sheet, OPEN)
        assert live() == {}
        replicon.tenant.log(sheet, PROJECT, date(2026, 3, 3), Decimal("6"),
                            task="urn:replicon-tenant:acme:task:40")
        replicon.tenant.log(sheet, PROJECT, date(2026, 3, 2), Decimal(0),
                            task="urn:replicon-tenant:acme:task:40")
        replicon.tenant.set_status(sheet, APPROVED)
        assert live() == {"20260303": (Decimal("6.00"), Decimal("1050.00"))}
        with engine.connect() as conn:
            assert conn.execute(select(exceptions.c.reason)
                                .where(exceptions.c.status == "open")).all() == []


def won_deal() -> dict[str, Any]:
    return {"type": "opportunity.closed_won", "id": "deal:1:1", "at": "2026-03-01T09:00:00Z",
            "data": {"opportunity": {"id": "1", "name": "Globex ERP rollout",
                                     "amount": "50000.00", "currency": "USD",
                                     "close_date": "2026-03-01"},
                     "customer": {"id": "501", "name": "Globex LLC", "currency": "USD",
                                  "billing_country": "US"},
                     "contract": {"id": "ct-1", "billing_model": "time_and_materials",
                                  "currency": "USD", "legal_entity": "US01",
                                  "start": "2026-03-01", "rate_card": "rc-standard"},
                     "project": {"code": "GLX-001", "name": "Globex ERP rollout"}}}


def test_the_emulator_runs_from_the_cli_by_its_vendor_name() -> None:
    process = subprocess.Popen([sys.executable, "-m", "billbridge", "emulator", "run",
                                "replicon"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split("listening on ")[1].strip()
        answer = httpx.post(f"{url}/acme/services/TimesheetListService1.svc/GetData",
                            headers={"Authorization": f"Bearer {TOKEN}"},
                            json={"page": "1", "pagesize": "10", "columnUris": [
                                "urn:replicon:timesheet-list-column:timesheet"]})
        assert answer.status_code == 200 and json.loads(answer.text)["d"]["rows"] == []
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_an_unmapped_users_approved_hours_are_leakage_until_the_user_is_mapped(
        engine: Engine, replicon: RepliconEmulator) -> None:
    hub = Hub(engine, {"ledger": RecordingTarget("ledger")})
    hub.activate_config(BASE_CONFIG)
    hub.ingest([project_event()], source="psa")
    approved_sheet(replicon, 9, (0, "3"))  # Dave, whom the connection does not map
    poller = source(replicon, config=MappingConfig(source="replicon"))

    def unmapped() -> list[tuple[str, Decimal, str | None]]:
        sync(engine, poller, SystemClock())
        hub.run_until_idle()
        with engine.connect() as conn:
            return [(f.record, f.hours, f.project) for f in reconcile(
                conn, period_end=date(2026, 3, 31), now=datetime.now(UTC))
                if f.kind == UNMAPPED_KIND]

    [(record, hours, project)] = unmapped()
    assert (record.startswith("te_replicon_"), hours, project) == (True, Decimal(3), "GLX-001")
    poller.config = MappingConfig(source="replicon", workers={"dave": "w-alice"})
    assert unmapped() == []
