"""A dispatcher's hold on a lane lasts while its calls are out, and it sends
nothing once the hold is gone.

The chaos soak once applied 34 commands twice at a ledger that deduplicates
nothing (the hub's marker look-ups are all that stop twins). A round's calls
ran longer than its 3 s lease (a resend looks up each command's marker first,
at the target's pace), another dispatcher took the lane, claimed the same
commands and sent them, and the first went on with its next call, whose
commands it sent as first attempts, without a look-up.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import pytest
from sqlalchemy import Engine, select

from billbridge.connectors.base import (
    IdempotencyMode,
    OutboundCommand,
    RecordResult,
    TransientError,
)
from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator
from billbridge.engine.clock import Clock, ManualClock, SystemClock
from billbridge.engine.dispatcher import Dispatcher, DispatcherSettings
from billbridge.engine.outbox import NewCommand, enqueue_many
from billbridge.store.tables import dispatch_lanes, outbox

COMMANDS = 4  # two calls of two: one round


@pytest.fixture
def ledger() -> Iterator[LedgerEmulator]:
    emulator = LedgerEmulator(token="t", idempotency="none")  # twins are possible
    emulator.start()
    yield emulator
    emulator.stop()


class _Interrupted(LedgerTarget):
    """The ledger, with something happening during one of the calls: before
    the call reaches the ledger (``before``) or after it has applied
    (``after``)."""

    def __init__(self, url: str, *, call: int, before: Callable[[], None] | None = None,
                 after: Callable[[], None] | None = None) -> None:
        super().__init__(url, "t", max_batch=2, idempotency=IdempotencyMode.MARKER_LOOKUP)
        self.calls = 0
        self.interrupt_at, self.before, self.after = call, before, after

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        self.calls += 1
        this = self.calls
        if this == self.interrupt_at and self.before is not None:
            self.before()
        results = super().send(batch)
        if this == self.interrupt_at and self.after is not None:
            self.after()
        return results


def _enqueue(engine: Engine, clock: Clock) -> None:
    with engine.begin() as conn:
        enqueue_many(conn, [NewCommand(
            target="ledger", kind="customer.upsert", origin=f"e-{i}",
            payload={"id": f"C-{i}"}, aggregate_key=f"customer:C-{i}", correlation_id="c",
            record_kind="customer", record_id=f"C-{i}") for i in range(COMMANDS)],
            at=clock.now())


def _dispatcher(engine: Engine, target: LedgerTarget, clock: Clock, owner: str,
                lease_ms: int, hold_leases: int = 10) -> Dispatcher:
    return Dispatcher(engine, {"ledger": target}, clock, owner,
                      settings=DispatcherSettings(lease_ms=lease_ms, calls_per_claim=2,
                                                  hold_leases=hold_leases))


def _marker_ledger(ledger: LedgerEmulator) -> LedgerTarget:
    return LedgerTarget(ledger.url, "t", max_batch=2, idempotency=IdempotencyMode.MARKER_LOOKUP)


def _applied(ledger: LedgerEmulator) -> Counter[str]:
    return Counter(e["idempotency_key"] for e in ledger.effects)


def _pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(outbox.c.id).where(outbox.c.status != "done")).all())


def test_a_dispatcher_whose_lane_was_taken_sends_no_more_calls(
        engine: Engine, ledger: LedgerEmulator) -> None:
    """A's first call outlives its lease; B takes the lane and sends what A
    claimed (the first call's commands it finds at the ledger by their
    markers, the second's it writes). A must not then send its second call:
    it would go as a first attempt, with no look-up, and make twins."""
    clock = ManualClock()
    lease_ms = 1_000
    thief: list[Dispatcher] = []

    def lease_runs_out_and_b_takes_over() -> None:
        clock.advance(lease_ms / 1000 + 1)
        thief[0].run_once()

    slow = _Interrupted(ledger.url, call=1, after=lease_runs_out_and_b_takes_over)
    a = _dispatcher(engine, slow, clock, "dispatcher-a", lease_ms)
    thief.append(_dispatcher(engine, _marker_ledger(ledger), clock, "dispatcher-b", lease_ms))
    _enqueue(engine, clock)
    try:
        assert a.run_once() == 0  # it lost the lane: it records nothing
        assert _applied(ledger) == Counter({key: 1 for key in _applied(ledger)})
        assert slow.calls == 1  # and sent nothing after it lost it
        assert _applied(ledger) == Counter({key: 1 for key in _applied(ledger)})
        assert len(_applied(ledger)) == COMMANDS
        assert _pending(engine) == 0  # B recorded every command as applied
    finally:
        slow.close()
        thief[0].targets["ledger"].close()  # type: ignore[attr-defined]


def _while_a_waits(engine: Engine, ledger: LedgerEmulator, *, lease_ms: int,
                   b_done: Callable[[list[int]], bool], hold_leases: int = 10,
                   then_fail: bool = False) -> tuple[int, list[int], int]:
    """Dispatcher A's first call waits before it reaches the ledger while
    dispatcher B runs a round every quarter lease until ``b_done`` (given what
    B's rounds settled) says so; then A's call goes on, or fails having
    applied nothing. What A's round settled, B's rounds, A's calls."""
    clock = SystemClock()
    in_flight, release = threading.Event(), threading.Event()
    b = _dispatcher(engine, _marker_ledger(ledger), clock, "dispatcher-b", lease_ms)
    rounds: list[int] = []

    def b_tries() -> None:
        in_flight.wait(timeout=30)
        deadline = time.monotonic() + 20
        while not b_done(rounds) and time.monotonic() < deadline:
            rounds.append(b.run_once())
            time.sleep(lease_ms / 1000 / 4)
        release.set()

    def a_waits() -> None:
        in_flight.set()
        release.wait(timeout=30)
        if then_fail:
            raise TransientError("no answer for minutes, then the connection dropped")

    slow = _Interrupted(ledger.url, call=1, before=a_waits)
    a = _dispatcher(engine, slow, clock, "dispatcher-a", lease_ms, hold_leases)
    _enqueue(engine, clock)
    trier = threading.Thread(target=b_tries)
    trier.start()
    try:
        settled = a.run_once()
    finally:
        release.set()
        trier.join(timeout=30)
        slow.close()
        b.targets["ledger"].close()  # type: ignore[attr-defined]
    return settled, rounds, slow.calls


def test_a_lane_stays_held_while_a_long_call_is_out(
        engine: Engine, ledger: LedgerEmulator) -> None:
    """A call that takes three leases: the round renews its lanes while it
    waits, so another dispatcher trying meanwhile gets nothing, and every
    command applies once."""
    settled, b_rounds, _ = _while_a_waits(engine, ledger, lease_ms=600,
                                          b_done=lambda rounds: len(rounds) >= 12)
    assert settled == COMMANDS
    assert b_rounds and not any(b_rounds)  # B never got the lane
    assert _applied(ledger) == Counter({key: 1 for key in _applied(ledger)})
    assert len(_applied(ledger)) == COMMANDS
    with engine.connect() as conn:  # and A gave it back at the end
        assert conn.execute(select(dispatch_lanes.c.lease_owner)).scalars().all() == [None]


def test_a_call_hung_past_the_hold_limit_gives_its_lanes_back(
        engine: Engine, ledger: LedgerEmulator) -> None:
    """Renewals stop after ``hold_leases`` leases: a call that hangs (and in
    the end fails, having applied nothing) does not hold its lanes, and the
    commands behind them, for ever; another dispatcher sends them."""
    settled, b_rounds, a_calls = _while_a_waits(
        engine, ledger, lease_ms=300, hold_leases=2, then_fail=True,
        b_done=lambda rounds: sum(rounds) > 0)
    assert settled == 0  # its lanes were taken meanwhile: it records nothing
    assert sum(b_rounds) == COMMANDS
    assert a_calls == 1
    assert _applied(ledger) == Counter({key: 1 for key in _applied(ledger)})
    assert len(_applied(ledger)) == COMMANDS
    assert _pending(engine) == 0
