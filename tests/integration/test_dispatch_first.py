"""While the outbox is behind, the worker holding the target's lease sends
instead of processing: with several workers the others process, and the
one dispatcher is not also a fifth of the processing (issue 8)."""

from __future__ import annotations

from sqlalchemy import Engine, Table, func, select

from billbridge.engine.clock import ManualClock
from billbridge.engine.dispatcher import DispatcherSettings
from billbridge.engine.hub import Hub, HubSettings
from billbridge.store.tables import inbox, outbox
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget


def _count(engine: Engine, table: Table, status: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)
                                .where(table.c.status == status)).scalar_one())


def _hubs(engine: Engine, target: FakeTarget, dispatch_first_s: float) -> tuple[Hub, Hub]:
    def settings() -> HubSettings:
        return HubSettings(dispatcher=DispatcherSettings(calls_per_claim=1),
                           dispatch_first_s=dispatch_first_s)
    holder = Hub(engine, {"ledger": target}, clock=ManualClock(), owner="holder",
                 settings=settings())
    other = Hub(engine, {"ledger": target}, clock=holder.clock, owner="other",
                settings=settings())
    holder.activate_config(CONFIG)
    holder.ingest([project_event()], source="harvest")
    holder.run_until_idle()  # the project is posted and the holder has the ERP's lease
    return holder, other


def test_the_lease_holder_sends_while_the_outbox_is_behind(engine: Engine) -> None:
    target = FakeTarget(max_batch=2)
    holder, other = _hubs(engine, target, dispatch_first_s=3600)
    holder.ingest([time_entry(f"te-{i}") for i in range(10)], source="harvest")
    other.worker.run_once()  # another worker's output: ten commands waiting
    holder.ingest([time_entry(f"te-{i}") for i in range(10, 13)], source="harvest")
    # Not behind yet: it processes its three, and sends four (as many as it
    # processed, in full claims of two).
    assert holder.step(dispatch_budget_s=0) == 3 + 4
    assert holder.dispatcher.behind == {"ledger"}
    holder.ingest([time_entry(f"te-{i}") for i in range(13, 16)], source="harvest")

    assert holder.step(dispatch_budget_s=0) == 2  # behind: one claim sent, nothing processed
    assert _count(engine, inbox, "pending") == 3
    while _count(engine, outbox, "pending"):
        holder.step(dispatch_budget_s=0)
        assert _count(engine, inbox, "pending") == 3  # still sending, not processing
    holder.run_until_idle()  # caught up: it processes again
    assert _count(engine, inbox, "pending") == 0
    assert sorted(c.payload["time_entry"] for c in target.effects
                  if c.kind == "time_charge.post") == sorted(f"te-{i}" for i in range(16))


def test_it_still_processes_once_dispatch_first_s_has_passed(engine: Engine) -> None:
    target = FakeTarget(max_batch=2)
    holder, other = _hubs(engine, target, dispatch_first_s=0)
    holder.ingest([time_entry(f"te-{i}") for i in range(10)], source="harvest")
    other.worker.run_once()
    holder.step(dispatch_budget_s=0)
    assert holder.dispatcher.behind == {"ledger"}
    holder.ingest([time_entry(f"te-{i}") for i in range(10, 13)], source="harvest")
    holder.step(dispatch_budget_s=0)
    assert _count(engine, inbox, "pending") == 0  # processed although behind
