"""Pacing and the circuit breaker: a target's ``target_leases`` row, shared by
every dispatcher of the target (the vendor's limit is per account, and so is
its outage). When each call may go, and whether calls may go at all."""

from __future__ import annotations

import structlog
from sqlalchemy import Connection, case, select, update

from billbridge.connectors.base import RateLimit
from billbridge.engine import metrics
from billbridge.engine.clock import Clock
from billbridge.engine.policy import CircuitBreaker, CircuitState
from billbridge.store.db import dialect_insert
from billbridge.store.tables import outbox, target_leases

log = structlog.get_logger("billbridge.dispatcher")


class Pacing:
    """The targets' pace and breakers as stored, for one dispatcher."""

    def __init__(self, clock: Clock, breaker_threshold: int, breaker_cooldown: float) -> None:
        self.clock = clock
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown

    def breaker(self, conn: Connection, name: str, *, lock: bool = False) -> CircuitBreaker:
        """The target's breaker as stored; with ``lock``, its row stays locked
        until the transaction ends (PostgreSQL; SQLite's write lock is already
        held), so that a change made from it cannot overwrite another's."""
        query = select(target_leases).where(target_leases.c.target == name)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            conn.execute(dialect_insert(conn)(target_leases).values(
                target=name, circuit="closed", circuit_until_ms=0, consecutive_failures=0,
                paced_until_us=0).on_conflict_do_nothing())
            row = conn.execute(query).one()
        return CircuitBreaker(threshold=self.breaker_threshold,
                              cooldown_seconds=self.breaker_cooldown,
                              state=CircuitState(row.circuit), failures=row.consecutive_failures,
                              open_until_ms=row.circuit_until_ms)

    def count_failure(self, conn: Connection, name: str) -> CircuitBreaker:
        """One more failed call of the target, counted on its row: read under
        a lock, since lanes fail together when a target goes down, and two
        settlements that each read the run of failures and wrote it back plus
        one would count one failure where there were two."""
        breaker = self.breaker(conn, name, lock=True)
        was = breaker.state
        breaker.failure(self.clock.ms())
        self.save(conn, name, breaker)
        if breaker.state is CircuitState.OPEN and was is not CircuitState.OPEN:
            log.error("dispatch.circuit_opened", target=name, failures_in_a_row=breaker.failures,
                      until_ms=breaker.open_until_ms, after_trial=was is CircuitState.HALF_OPEN)
        return breaker

    def count_success(self, conn: Connection, name: str, breaker: CircuitBreaker, *,
                      trial: bool) -> None:
        """A good call of the target ends its run of failures; after a trial
        call, the circuit closes and what backed off while it was open goes."""
        if breaker.state is not CircuitState.CLOSED or breaker.failures:
            breaker.success()  # a healthy target's row is not rewritten each call
            self.save(conn, name, breaker)
        if trial:
            log.info("dispatch.circuit_closed", target=name)
            self.resume(conn, name)

    def save(self, conn: Connection, name: str, breaker: CircuitBreaker) -> None:
        conn.execute(update(target_leases).where(target_leases.c.target == name).values(
            circuit=breaker.state.value, circuit_until_ms=breaker.open_until_ms,
            consecutive_failures=breaker.failures))
        metrics.CIRCUIT_OPEN.labels(name).set(1 if breaker.state is CircuitState.OPEN else 0)

    def resume(self, conn: Connection, name: str) -> None:
        """The target is back after its circuit was open: commands backing off
        because it was down go now, instead of each waiting out a backoff that
        grew while nothing could succeed (the token bucket still paces them)."""
        conn.execute(update(outbox).where(
            outbox.c.target == name, outbox.c.status == "pending",
            outbox.c.next_attempt_ms > self.clock.ms()).values(next_attempt_ms=self.clock.ms()))

    def reserve(self, conn: Connection, name: str, limit: RateLimit, calls: int) -> list[int]:
        """When each of a round's ``calls`` may go (µs on the hub's clock),
        reserved at the pace every dispatcher of the target shares (the
        vendor's limit is per account): a generic cell rate algorithm on the
        target's row, whose ``paced_until_us`` is when the next call is due;
        up to ``burst`` calls may go ahead of it. One update, in the claim's
        transaction; slots a round does not use (a call failed) go unused."""
        step = max(1, round(1_000_000 / limit.per_second))
        tolerance = step * (max(1, limit.burst) - 1)
        now = self.clock.ms() * 1000
        due = target_leases.c.paced_until_us
        after = conn.execute(update(target_leases).where(target_leases.c.target == name)
                             .values(paced_until_us=case((due < now, now), else_=due)
                                     + step * calls)
                             .returning(target_leases.c.paced_until_us)).scalar_one()
        first = after - step * calls
        return [max(now, first + i * step - tolerance) for i in range(calls)]

    def wait_for(self, slot_us: int) -> None:
        """Until a call's reserved slot (µs on the hub's clock)."""
        wait = (slot_us - self.clock.ms() * 1000) / 1_000_000
        if wait > 0:
            self.clock.sleep(wait)
