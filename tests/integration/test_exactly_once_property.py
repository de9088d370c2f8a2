"""Exactly-once effect under any interleaving of duplicate deliveries, worker
and dispatcher crashes, timeouts, 5xx, 429s and lost acknowledgements, against
the real HTTP ledger emulator, on SQLite and PostgreSQL.

Each example drives the hub through a random schedule, then lets it recover
(crashed owners' leases expire, faults stop) and checks the ledger itself:
one applied effect per logical command, and none missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from billbridge.connectors.base import IdempotencyMode
from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator
from billbridge.engine.clock import ManualClock
from billbridge.engine.dispatcher import Dispatcher, DispatcherSettings
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.policy import RetryPolicy
from billbridge.engine.worker import SimulatedCrash, Worker, WorkerSettings
from conftest import CONFIG, project_event, time_entry
from ledger_schedules import Crash, ledger_emulator, reset_store

ENTRIES = 6
PROJECTS = ("P-1", "P-2")
LEASE_MS = 5_000

deliver = st.tuples(st.just("deliver"), st.integers(0, ENTRIES - 1))
fault = st.tuples(st.just("fault"), st.sampled_from(["5xx", "429:1", "lost_ack", "timeout:0.3",
                                                     "lost_ack", "ok"]))
work = st.tuples(st.just("work"), st.sampled_from(["ok", "ok", "crash_event", "crash_commit"]))
dispatch = st.tuples(st.just("dispatch"), st.sampled_from(["ok", "ok", "crash_after_send"]))
wait = st.tuples(st.just("wait"), st.sampled_from([1, 10, 60]))
schedules = st.lists(st.one_of(deliver, fault, work, dispatch, wait), min_size=5, max_size=40)


def entry_event(i: int) -> dict[str, Any]:
    return time_entry(f"te-{i}", project=PROJECTS[i % 2], hours=str(1 + i))








@pytest.fixture(params=[IdempotencyMode.NATIVE, IdempotencyMode.MARKER_LOOKUP],
                ids=["native", "marker"])
def ledger(request: pytest.FixtureRequest) -> Iterator[tuple[LedgerEmulator, IdempotencyMode]]:
    yield from ledger_emulator(request.param)


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(schedule=schedules)
def test_every_command_applies_exactly_once(engine: Engine, ledger: Any,
                                            schedule: list[tuple[str, Any]]) -> None:
    emulator, mode = ledger
    emulator.reset()
    emulator.faults.clear()
    reset_store(engine)
    clock = ManualClock()
    target = LedgerTarget(emulator.url, "t", timeout=0.15, max_batch=4, idempotency=mode)
    hub_settings = HubSettings(retry=RetryPolicy(base_seconds=1, cap_seconds=30,
                                                 max_attempts=1000),
                               worker=WorkerSettings(lease_ms=LEASE_MS, batch_size=3),
                               dispatcher=DispatcherSettings(lease_ms=LEASE_MS))
    hub = Hub(engine, {"ledger": target}, clock=clock, settings=hub_settings, seed=3)
    hub.activate_config(CONFIG)
    hub.ingest([project_event(p) for p in PROJECTS], source="psa")

    def fresh_worker() -> Worker:
        return Worker(engine, hub.worker.flows, hub_settings.routes, clock,
                      f"w-{clock.ms()}-{id(object())}", hub_settings.worker)

    def fresh_dispatcher() -> Dispatcher:
        return Dispatcher(engine, {"ledger": target}, clock, f"d-{clock.ms()}-{id(object())}",
                          hub_settings.retry, hub_settings.dispatcher)

    worker, dispatcher = fresh_worker(), fresh_dispatcher()
    delivered: set[int] = set()
    for action, arg in schedule:
        if action == "deliver":
            hub.ingest([entry_event(arg)], source="harvest")
            delivered.add(arg)
        elif action == "fault":
            emulator.faults.script([arg])
        elif action == "work":
            worker.crash_hook = None if arg == "ok" else Crash(arg.removeprefix("crash_"))
            try:
                worker.run_once()
            except SimulatedCrash:
                worker = fresh_worker()  # the process died; its leases run out
        elif action == "dispatch":
            dispatcher.crash_hook = None if arg == "ok" else Crash("sent")
            try:
                dispatcher.run_once()
            except SimulatedCrash:
                dispatcher = fresh_dispatcher()
        else:
            clock.advance(arg)

    # Recovery: faults stop, abandoned leases expire, survivors drain the queue.
    emulator.faults.clear()
    clock.advance(LEASE_MS / 1000 + 1)
    hub.worker, hub.dispatcher = fresh_worker(), fresh_dispatcher()
    hub.run_until_idle()

    keys = [e["idempotency_key"] for e in emulator.effects]
    assert len(keys) == len(set(keys)), "a command applied twice"
    charged = sorted(e["data"]["time_entry"] for e in emulator.effects
                     if e["kind"] == "time_charge.post")
    assert charged == sorted(f"te-{i}" for i in delivered), "a command was lost"
    projects = sorted(e["data"]["code"] for e in emulator.effects
                      if e["kind"] == "project.upsert")
    assert projects == sorted(PROJECTS)
    with engine.connect() as conn:
        stuck = conn.execute(text("SELECT count(*) FROM outbox WHERE status != 'done'")).scalar()
        open_exceptions = conn.execute(text("SELECT count(*) FROM exceptions")).scalar()
    assert stuck == 0 and open_exceptions == 0
