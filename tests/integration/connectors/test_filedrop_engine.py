"""The file drop as the hub's ERP, end to end over a real SFTP server on
127.0.0.1 (asyncssh's server side; paramiko is the client): won deals,
1,000 approved time entries and a billing run go through the real engine
while uploads are cut half way, renames lose their answer, and the
dispatcher dies between writing a file and renaming it, between the rename
and the manifest, and between the upload and the settle. The legacy ERP's
import job runs while the hub is down and after. Then everything is read
back from the SFTP server: one file per batch (no line's key in two files),
each with a manifest whose counts, totals and checksum match the file; and
the ERP, which posts whatever it is given, holds each charge once.

A manual clock drives backoff and lease expiry, so the waiting takes no real time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from xero_story import BILLING_RUN, ENTRIES, PROJECTS, TAXED, entries, won

from billbridge.connectors.base import OutboundCommand
from billbridge.connectors.filedrop import mapping
from billbridge.connectors.filedrop.client import SftpDrop
from billbridge.connectors.filedrop.emulator import LegacyErp, SftpServer
from billbridge.connectors.filedrop.mapping import Manifest
from billbridge.connectors.filedrop.target import FileDropTarget
from billbridge.emulation.faults import Fault
from billbridge.engine.clock import ManualClock
from billbridge.engine.dispatcher import Dispatcher, DispatcherSettings
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.policy import RetryPolicy
from billbridge.engine.worker import SimulatedCrash
from billbridge.store.tables import records

LEASE_MS = 5_000
PASSWORD = "drop-test-password"


class Crashes:
    """The dispatcher's process dies once at each of ``stages`` (a stage named
    twice: twice), whichever the round reaches first."""

    def __init__(self, stages: list[str]) -> None:
        self.left = Counter(stages)
        self.fired: Counter[str] = Counter()

    def __call__(self, stage: str, _name: str) -> None:
        if self.left[stage] > 0:
            self.left[stage] -= 1
            self.fired[stage] += 1
            raise SimulatedCrash(stage)


@pytest.fixture
def sftp(tmp_path: Path) -> Iterator[SftpServer]:
    with SftpServer(tmp_path / "erp", password=PASSWORD) as server:
        yield server


def drop_for(server: SftpServer) -> SftpDrop:
    return SftpDrop(server.host, server.port, username=server.username, password=PASSWORD,
                    host_key=server.host_key, timeout=5.0)


def run(hub: Hub, target: FileDropTarget, erp: LegacyErp, crashes: Crashes,
        settings: HubSettings) -> None:
    """Until idle; after each crash a new dispatcher takes over once the dead
    one's leases run out, and the ERP's import job runs meanwhile."""
    for _ in range(50):
        hub.dispatcher.crash_hook = crashes
        target.crash_hook = crashes
        try:
            hub.run_until_idle()
            return
        except SimulatedCrash:
            erp.import_once()
            hub.clock.advance(LEASE_MS / 1000 + 1)  # type: ignore[attr-defined]
            hub.dispatcher = Dispatcher(hub.engine, {"filedrop": target}, hub.clock,
                                        f"d-{hub.clock.ms()}", settings.retry,
                                        settings.dispatcher)
    raise AssertionError("the hub never came to rest")


def read_back(server: SftpServer) -> tuple[dict[str, list[mapping.Row]], dict[str, Manifest]]:
    """Every data file and manifest in the inbound folder, read over SFTP."""
    drop = drop_for(server)
    try:
        names = drop.list("in")
        files = {n: drop.read(f"in/{n}") for n in names if mapping.is_data_file(n)}
        manifests = {n: Manifest.parse(drop.read(f"in/{n}")) for n in names
                     if n.endswith(".manifest.csv")}
    finally:
        drop.close()
    for name, data in files.items():
        assert manifests.get(mapping.manifest_name(name)) == Manifest.of(name, data), \
            f"{name}: its manifest is missing or does not match the file read back"
    assert len(manifests) == len(files)
    return ({n: mapping.parse(mapping.kind_of(n), d, mapping.layout_of(n))
             for n, d in files.items()}, manifests)


def test_1000_charges_land_once_through_crashes_and_sftp_disconnects(
        engine: Engine, sftp: SftpServer) -> None:
    clock = ManualClock()
    count = ENTRIES if engine.dialect.name == "sqlite" else ENTRIES // 5
    settings = HubSettings(routes={"erp": "filedrop"},
                           retry=RetryPolicy(base_seconds=1, cap_seconds=30, max_attempts=1000),
                           dispatcher=DispatcherSettings(lease_ms=LEASE_MS))
    target = FileDropTarget(drop_for(sftp), max_batch=100)
    erp = LegacyErp(sftp.root)
    hub = Hub(engine, {"filedrop": target}, clock=clock, seed=5, settings=settings)
    hub.activate_config(TAXED)
    crashes = Crashes(["renamed", "written", "sent"])
    hub.ingest([won(i) for i in range(PROJECTS)], source="hubspot")
    run(hub, target, erp, crashes, settings)
    erp.import_once()  # the projects exist at the ERP before their time arrives

    crashes.left.update(["written", "renamed", "sent", "renamed", "written", "sent", "renamed"])
    sftp.faults.script(["5xx", "ok", "lost_ack", "ok", "ok", "5xx", "ok", "ok", "lost_ack"])
    sftp.faults.set_random(seed=9, rates={Fault.SERVER_ERROR: 0.06, Fault.LOST_ACK: 0.06})
    hub.ingest(entries(count), source="harvest")
    run(hub, target, erp, crashes, settings)
    erp.import_once()
    hub.ingest([BILLING_RUN], source="operator")
    crashes.left.update(["renamed", "sent"])
    run(hub, target, erp, crashes, settings)
    sftp.faults.clear()
    erp.import_once()

    # Every stage was crashed at, twice at least (a crash's resend writes again,
    # so most of the script is met; how much depends on how rounds fall).
    assert min(crashes.fired[s] for s in ("written", "renamed", "sent")) >= 2, crashes.fired
    assert sftp.faults.injected[Fault.SERVER_ERROR] >= 3, "too few uploads were cut"
    assert sftp.faults.injected[Fault.LOST_ACK] >= 3

    # Read back from the SFTP server: one file per batch, manifests that match.
    files, manifests = read_back(sftp)
    keys = Counter(r["key"] for rows in files.values() for r in rows if "charge" in r)
    assert len(keys) == count and set(keys.values()) == {1}, "a charge is in two files"
    journal = [m for m in manifests.values() if m.kind == "JRNL"]
    assert sum(m.records for m in journal) == count

    # The ERP's truth: each charge posted once, amounts as the hub priced them.
    assert erp.refused == {}
    posted = Counter(r["charge"] for r in erp.ledger.journal)
    assert len(posted) == count and set(posted.values()) == {1}, \
        f"charges posted twice: {[c for c, n in posted.items() if n > 1][:5]}"
    with engine.connect() as conn:
        hub_total = sum(Decimal(str(_json(d)["amount"])) for d in conn.execute(
            records.select().with_only_columns(records.c.data)
            .where(records.c.kind == "time_charge")).scalars())
        assert conn.execute(text("SELECT count(*) FROM outbox WHERE status != 'done'")
                            ).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM exceptions")).scalar() == 0
    assert sum(m.amount_total for m in journal) == hub_total
    live = target.live_postings()  # the ERP's acknowledgements, read over SFTP
    assert len(live) == count and sum(p.amount for p in live) == hub_total
    invoices = Counter(i.invoice for i in erp.ledger.invoices)
    assert invoices == {f"inv_P-{i}_2026-03-31": 1 for i in range(PROJECTS)}
    assert Counter(r["customer"] for r in erp.ledger.customers.values()).total() == PROJECTS
    assert target.found_on_resend > 0, "no resend had to find its lines"


def _json(value: Any) -> dict[str, Any]:
    import json

    return value if isinstance(value, dict) else dict(json.loads(value))


def charge(n: int, attempt: int = 1) -> OutboundCommand:
    payload = {"id": f"tc_{n}", "time_entry": f"te-{n}", "project": "P-1", "worker": "w-alice",
               "work_date": "2026-03-02", "hours": "1.50", "rate": "175.00",
               "amount": "262.50", "currency": "USD", "billable": True, "config_version": 1,
               "source_version": 1}
    return OutboundCommand(n, "filedrop", "time_charge.post", f"key-{n:03d}",
                           "project:P-1", payload, attempt=attempt)


def test_a_batch_regrouped_after_a_crash_posts_each_charge_once(tmp_path: Path,
                                                                   sftp: SftpServer) -> None:
    target = FileDropTarget(drop_for(sftp), max_batch=100)
    erp = LegacyErp(sftp.root)
    project = OutboundCommand(100, "filedrop", "project.upsert", "key-project", "project:P-1",
                              {"code": "P-1", "name": "Project 1", "status": "active"})
    target.send([project])
    target.crash_hook = Crashes(["renamed"])
    with pytest.raises(SimulatedCrash):  # the file is in place; its manifest is not
        target.send([charge(n) for n in range(6)])
    erp.import_once()  # nothing: a file without its manifest is not complete
    assert erp.ledger.journal == []
    # The resend is grouped otherwise: three of the dead batch, four new ones.
    results = target.send([charge(n, attempt=2) for n in range(3, 6)]
                          + [charge(n) for n in range(6, 10)])
    assert {r.status for r in results} == {"applied"} and len(results) == 7
    erp.import_once()
    posted = Counter(r["charge"] for r in erp.ledger.journal)
    assert posted == {f"tc_{n}": 1 for n in range(10)}  # the first three too, once
    assert target.found_on_resend == 3
    files, _ = read_back(sftp)
    assert sorted(len(rows) for name, rows in files.items() if "JRNL" in name) == [4, 6]
