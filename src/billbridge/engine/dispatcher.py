"""The dispatcher: sends outbox commands to their targets in batches, under
each target's rate limit and circuit breaker, retrying transient faults with
backoff and opening exceptions for permanent ones.

Exactly-once effect rests on two things: a command keeps its idempotency key
across every attempt, and its result is recorded only after the target
answered. A dispatcher that dies between the two leaves the command pending;
the next owner of the target sends it again and the target recognises the key
(or the connector finds the marker), so the effect applies once. A round keeps
its lanes leased while its calls are out and sends nothing once it has lost
one (``LaneHold``), so two dispatchers never send the same command at once.

This module is the round and its order; each step's idea is a module of
``engine.dispatch``: ``lanes``, ``claiming``, ``pacing``, ``calls``, ``settling``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
import structlog
from sqlalchemy import Connection, Engine

from billbridge.connectors.base import DeliveryError, OutboundCommand, RecordResult, Target
from billbridge.connectors.ratelimit import QUOTA_EXHAUSTED
from billbridge.engine import metrics
from billbridge.engine.clock import Clock
from billbridge.engine.dispatch import calls, claiming, settling
from billbridge.engine.dispatch.claiming import REVERSING_KINDS, Call
from billbridge.engine.dispatch.claiming import named as _named
from billbridge.engine.dispatch.claiming import references as _references
from billbridge.engine.dispatch.lanes import LaneHold, Lanes, pending
from billbridge.engine.dispatch.pacing import Pacing
from billbridge.engine.dispatch.settling import CONFIRMED_KINDS, Settling
from billbridge.engine.policy import CircuitBreaker, CircuitState, RetryPolicy
from billbridge.store.db import READ_ONLY

__all__ = ["CONFIRMED_KINDS", "REVERSING_KINDS", "Dispatcher", "DispatcherSettings", "lanes_of"]

log = structlog.get_logger("billbridge.dispatcher")


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    lease_ms: int = 30_000
    # A round's lanes are renewed while its calls are out, for at most this
    # many leases: a call hung past that gives its lanes back (see LaneHold).
    hold_leases: int = 10
    lookahead: int = 4  # candidate rows read per batch slot, to fill batches past blocked ones
    calls_per_claim: int = 5  # target batches claimed, sent and settled together
    stray_check_ms: int = 30_000  # how often to look for commands in lanes past the target's
    # While a target's outbox is behind, this process sends on up to this many
    # of its lanes at once (threads, each with its own rounds), never more than
    # the target's lanes: calls to a target that answers slowly (NetSuite's
    # asynchronous jobs) overlap instead of queueing behind each other.
    parallel_rounds: int = 4


def lanes_of(target: Target) -> int:
    """How many calls a target takes at once (its ``concurrency``, 1 when it
    says nothing): the number of lanes its commands are split into."""
    return max(1, int(getattr(target, "concurrency", 1)))


@dataclass(slots=True)
class _Claim:
    """What a round claimed: the lanes it holds (since ``leased_at``), its
    calls in order with the slot each may go at, and the commands they send."""

    held: list[int]
    leased_at: int
    trial: bool  # one command through a half-open circuit
    calls: list[Call]
    slots: list[int]
    commands: dict[int, OutboundCommand]


class _Outcome(NamedTuple):
    """One call made: its batch, and the results or the failure of the whole."""

    batch_id: str
    batch: list[Any]
    results: dict[str, RecordResult]
    failure: DeliveryError | None


class Dispatcher:
    def __init__(self, engine: Engine, targets: Mapping[str, Target], clock: Clock, owner: str,
                 policy: RetryPolicy | None = None, settings: DispatcherSettings | None = None,
                 rng: random.Random | None = None, breaker_threshold: int = 5,
                 breaker_cooldown: float = 30.0) -> None:
        self.engine = engine
        self.targets = dict(targets)
        self.clock = clock
        self.owner = owner
        self.policy = policy or RetryPolicy()
        self.settings = settings or DispatcherSettings()
        self.rng = rng or random.Random()
        self.lanes = {name: lanes_of(t) for name, t in targets.items()}
        self.leases = Lanes(engine, clock, owner, self.lanes, self.rng,
                            lease_ms=self.settings.lease_ms,
                            stray_check_ms=self.settings.stray_check_ms)
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self.pacing = Pacing(clock, breaker_threshold, breaker_cooldown)
        self.settling = Settling(clock, self.policy, self.rng, breaker_cooldown)
        self.crash_hook: Any = None  # tests: called with (stage, target) and may raise
        self.behind: set[str] = set()  # targets whose last claim was full
        self._pool: ThreadPoolExecutor | None = None  # parallel rounds, made when first needed
        self._pool_lock = threading.Lock()

    def release(self) -> None:
        """Give up our lanes at once (on a clean stop), instead of making the
        next dispatcher wait for the leases to run out."""
        self.leases.release()
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def run_once(self) -> int:
        """A round on every lane of every target that no one else holds;
        commands settled (applied or failed)."""
        return sum(self.dispatch(name) for name in self.targets)

    def dispatch(self, name: str) -> int:
        """Rounds on the target's lanes that no other dispatcher holds, each
        lane looked at once; the commands settled.

        While the target's outbox is behind (the last claim was full, or more
        waits than one round claims), the lanes are shared out among up to
        ``parallel_rounds`` threads, each running its own rounds, so that
        their calls are in flight together. Otherwise one round gathers from
        as many lanes as it takes to fill its calls: a short queue goes in
        full calls, not in one small call per lane (a vendor's daily quota
        counts calls)."""
        was_behind = name in self.behind
        self.behind.discard(name)
        left = self.leases.to_try(name)
        width = min(self.settings.parallel_rounds, self.lanes[name], len(left))
        if width < 2:
            return self._drain(name, left)
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as reader:
            most = self.targets[name].max_batch * self.settings.calls_per_claim
            behind = was_behind or claiming.backlog(reader, name, most)
            # Threads only for lanes no other dispatcher is sending on: in a fleet
            # the others' lanes would each cost a thread a lease attempt for nothing.
            held = self.leases.held_elsewhere(reader, name) if behind else set()
        if not behind:  # (the reader is closed first: its snapshot would hold SQLite's WAL)
            return self._drain(name, left)
        left = [lane for lane in left if lane not in held]
        width = min(width, len(left))
        if width < 2:
            return self._drain(name, left)
        return self._in_parallel(name, [left[i::width] for i in range(width)])

    def _in_parallel(self, name: str, shares: Sequence[list[int]]) -> int:
        """Each share of the lanes drained on a thread of its own."""
        futures = [self._threads().submit(self._drain, name, share) for share in shares]
        settled, failure = 0, None
        for future in futures:  # every share finishes (or fails) before this returns
            try:
                settled += future.result()
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return settled

    def _drain(self, name: str, left: list[int]) -> int:
        """Rounds until each lane in ``left`` has been looked at."""
        settled = 0
        while left:
            settled += self._round(name, left)
        return settled

    def _threads(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                width = max(self.settings.parallel_rounds, 1)
                self._pool = ThreadPoolExecutor(max_workers=width,
                                                thread_name_prefix="billbridge-dispatch")
            return self._pool

    # -- one round: a claim, its calls, their settlement --------------------
    def _round(self, name: str, left: list[int]) -> int:
        """Claim up to ``calls_per_claim`` batches of the target's size from the
        first lane in ``left`` that no one else holds, and from as many more as
        it takes to fill them; send them in order, and settle what came back
        in one transaction; the commands settled. The lanes looked at leave
        ``left``. A call that fails stops the round (later commands may follow
        one in it); the batches not sent stay pending, unrecorded.

        With a long queue one lane fills a round, so each dispatcher sends its
        own lane; with a short one a round gathers several, so a lone worker
        sends as full calls as it would with one lane."""
        self._skip_empty(name, left)
        if not left:
            return 0
        claim = self._claim(name, left)
        if claim is None:
            return 0
        outcomes = self._send_calls(name, claim)
        if self.crash_hook is not None:
            self.crash_hook("sent", name)
        return self._settle_round(name, claim, outcomes)

    def _skip_empty(self, name: str, left: list[int]) -> None:
        """Drop the lanes at the head of ``left`` with nothing to send, by
        reads alone."""
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as reader:
            while left and not pending(reader, name, left[0]):
                left.pop(0)

    def _claim(self, name: str, left: list[int]) -> _Claim | None:
        """Step one, a transaction: if the circuit lets calls through, lease
        lanes and claim their next commands, put the attempts on record,
        reserve the calls' slots and read the target's ids the commands name."""
        target = self.targets[name]
        leased_at = self.clock.ms()  # no earlier than any lane's lease is taken from
        with self.engine.begin() as conn:
            breaker = self._breaker(conn, name)
            if not breaker.allows(self.clock.ms()):
                left.clear()
                return None
            trial = breaker.state is CircuitState.HALF_OPEN
            limit = 1 if trial else target.max_batch * self.settings.calls_per_claim
            held, rows = self._lease_and_claim(conn, name, left, limit)
            if len(rows) >= limit and not trial:
                self.behind.add(name)  # a full claim: more is ready than one round sends
            if not rows:
                return None
            round_calls = claiming.calls_of(rows, target.max_batch)
            sends = claiming.record_sends(conn, name, self.owner, round_calls, self.clock.now())
            slots = self.pacing.reserve(conn, name, target.rate_limit, len(round_calls))
            payloads = [orjson.loads(r.payload) for r in rows]
            refs = _references(conn, name, _named(target, rows, payloads))
        return _Claim(held, leased_at, trial, round_calls, slots,
                      claiming.commands(name, rows, payloads, refs, sends))

    def _lease_and_claim(self, conn: Connection, name: str, left: list[int],
                         limit: int) -> tuple[list[int], list[Any]]:
        """Lanes from ``left`` leased in turn and their commands claimed, until
        ``limit`` commands or no lane is left: the lanes held and the rows."""
        held: list[int] = []
        rows: list[Any] = []
        while left and len(rows) < limit:
            lane = left.pop(0)
            if (held and not pending(conn, name, lane)) or not self._take_lane(conn, name, lane):
                continue
            claimed = claiming.claim(conn, name, lane, limit - len(rows),
                                     lanes=self.leases.every(name), now=self.clock.ms(),
                                     lookahead=self.settings.lookahead)
            if claimed:
                held.append(lane)
                rows.extend(claimed)
            else:
                self.leases.free(conn, name, lane)
        return held, rows

    def _send_calls(self, name: str, claim: _Claim) -> list[_Outcome]:
        """Step two, no transaction open: each call at its slot, while the
        round still holds its lanes, until one fails."""
        outcomes: list[_Outcome] = []
        with LaneHold(self.leases, name, claim.held, claim.leased_at,
                      self.settings.hold_leases) as hold:
            for (batch_id, batch), slot in zip(claim.calls, claim.slots, strict=True):
                self.pacing.wait_for(slot)
                if not hold.kept():
                    # Another dispatcher has a lane and sends these commands: a call
                    # from here would send them again as first attempts. (Freeing
                    # the lanes below finds it gone and records nothing.)
                    log.warning("dispatch.lanes_lost", target=name, lanes=claim.held,
                                unsent=sum(len(b) for _, b in claim.calls[len(outcomes):]))
                    break
                results, failure = calls.call(self.targets[name], name, batch_id,
                                              [claim.commands[r.id] for r in batch])
                outcomes.append(_Outcome(batch_id, batch, results, failure))
                if failure is not None:
                    break
        return outcomes

    def _settle_round(self, name: str, claim: _Claim, outcomes: Sequence[_Outcome]) -> int:
        """Step three, a transaction: give the lanes back (if one was lost,
        record nothing) and settle each call; the commands settled."""
        with self.engine.begin() as conn:
            if [lane for lane in claim.held if not self.leases.free(conn, name, lane)]:
                # Someone else holds a lane now and will resend; the keys make that safe.
                return 0
            # Read again: another lane's calls may have moved the breaker meanwhile.
            breaker = self._breaker(conn, name)
            settling.forget_unsent(conn, [batch_id for batch_id, _ in
                                          claim.calls[len(outcomes):]])
            settled = 0
            for outcome in outcomes:
                if outcome.failure is None:
                    metrics.TARGET_CALLS.labels(name, "ok").inc()
                    self.pacing.count_success(conn, name, breaker, trial=claim.trial)
                    settled += self.settling.settle(conn, name, outcome.batch,
                                                    outcome.batch_id, outcome.results)
                elif outcome.failure.code == QUOTA_EXHAUSTED:
                    # Not a fault: the day's allocation is spent. Wait for the reset
                    # without counting an attempt or tripping the breaker.
                    self.settling.defer(conn, outcome.batch, outcome.batch_id, outcome.failure)
                else:
                    breaker = self._call_failed(conn, name, outcome.batch_id, outcome.batch,
                                                outcome.failure)
            return settled

    def _call_failed(self, conn: Connection, name: str, batch_id: str, batch: Sequence[Any],
                     failure: DeliveryError) -> CircuitBreaker:
        """A call that failed as a whole: counted against the target's
        breaker, and its commands backed off or failed."""
        metrics.TARGET_CALLS.labels(name, "transient" if failure.transient
                                    else "permanent").inc()
        breaker = self._count_failure(conn, name)
        log.warning("dispatch.call_failed", target=name, batch_id=batch_id,
                    commands=len(batch), code=failure.code, error=str(failure),
                    failures_in_a_row=breaker.failures, circuit=breaker.state.value)
        self.settling.failed_call(conn, batch, batch_id, failure, breaker.failures)
        return breaker

    # -- the round's reads and writes of lanes and breakers -----------------
    def _take_lane(self, conn: Connection, name: str, lane: int) -> bool:
        return self.leases.take(conn, name, lane)

    def _breaker(self, conn: Connection, name: str) -> CircuitBreaker:
        return self.pacing.breaker(conn, name)

    def _count_failure(self, conn: Connection, name: str) -> CircuitBreaker:
        return self.pacing.count_failure(conn, name)
