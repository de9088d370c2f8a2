"""The dispatcher: sends outbox commands to their targets in batches, under
each target's rate limit and circuit breaker, retrying transient faults with
backoff and opening exceptions for permanent ones.

Exactly-once effect rests on two things: a command keeps its idempotency key
across every attempt, and its result is recorded only after the target
answered. A dispatcher that dies between the two leaves the command pending;
the next owner of the target sends it again and the target recognises the key
(or the connector finds the marker), so the effect applies once. A round keeps
its lanes leased while its calls are out and sends nothing once it has lost
one (``_LaneHold``), so two dispatchers never send the same command at once.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from sqlalchemy import (
    ARRAY,
    Connection,
    Engine,
    String,
    any_,
    bindparam,
    case,
    delete,
    func,
    select,
    union_all,
    update,
)

from billbridge.connectors.base import (
    DeliveryError,
    OutboundCommand,
    RecordResult,
    ResultStatus,
    Target,
)
from billbridge.connectors.ratelimit import QUOTA_EXHAUSTED
from billbridge.domain.events import HUB_SOURCE
from billbridge.domain.reasons import ReasonCode
from billbridge.engine import metrics
from billbridge.engine.clock import Clock
from billbridge.engine.exception_queue import open_exception
from billbridge.engine.inbox import ingest_many
from billbridge.engine.policy import CircuitBreaker, CircuitState, RetryPolicy
from billbridge.engine.tracing import tracer
from billbridge.store import binder
from billbridge.store.bulk import Bulk
from billbridge.store.db import READ_ONLY, dialect_insert
from billbridge.store.tables import delivery_attempts, dispatch_lanes, outbox, target_leases

log = structlog.get_logger("billbridge.dispatcher")

_SENDING = [outbox.c[name] for name in (
    "id", "target", "kind", "idempotency_key", "aggregate_key", "payload", "correlation_id",
    "inbox_id", "record_kind", "record_id", "attempts", "depends_on")]
"""What sending a command needs (reading whole rows parses timestamps nobody uses)."""
_DONE = Bulk(lambda _: update(outbox).where(outbox.c.id == bindparam("row_id")).values(
    status="done", external_id=bindparam("external_id"), done_at=bindparam("at"),
    last_error=None, attempts=outbox.c.attempts + 1))
_ATTEMPT = Bulk(lambda _: update(delivery_attempts).where(
    delivery_attempts.c.outbox_id == bindparam("row_id"),
    delivery_attempts.c.batch_id == bindparam("in_batch")).values(
    outcome=bindparam("outcome"), detail=bindparam("detail")))
_APPLIED = (update(delivery_attempts).where(
    delivery_attempts.c.batch_id == bindparam("in_batch"), delivery_attempts.c.outcome == "sent")
    .values(outcome="applied", detail=select(outbox.c.external_id)
            .where(outbox.c.id == delivery_attempts.c.outbox_id).scalar_subquery()))
"""A call's attempts still marked sent once its other results are settled:
the applied ones, each with the id the target gave it (already on its outbox
row). One statement for the call, not one parameter set per command."""
_SENT = Bulk(lambda _: delivery_attempts.insert().values(
    outbox_id=bindparam("outbox_id"), target=bindparam("target"),
    batch_id=bindparam("batch_id"), attempt=bindparam("attempt"), owner=bindparam("owner"),
    started_at=bindparam("started_at"), outcome="sent",
    correlation_id=bindparam("correlation_id")))


CONFIRMED_KINDS = frozenset({"customer.upsert", "project.upsert", "invoice.create"})
"""Commands whose confirmation other work waits on: it becomes a
``posting.confirmed`` event in the inbox, in the same transaction."""
REVERSING_KINDS = ("time_charge.reverse",)
"""Commands that undo a record at the target: their id is not the record's."""


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    lease_ms: int = 30_000
    # A round's lanes are renewed while its calls are out, for at most this
    # many leases: a call hung past that gives its lanes back (see _LaneHold).
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
        self._start = {name: self.rng.randrange(n) for name, n in self.lanes.items()}
        # Lanes past a target's count that still hold commands (written when it
        # had more lanes), and when they were last looked for.
        self._strays: dict[str, tuple[int, list[int]]] = {}
        self._known_lanes: set[tuple[str, int]] = set()  # lane rows this process has seen
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self.crash_hook: Any = None  # tests: called with (stage, target) and may raise
        self.behind: set[str] = set()  # targets whose last claim was full
        self._pool: ThreadPoolExecutor | None = None  # parallel rounds, made when first needed
        self._pool_lock = threading.Lock()

    def release(self) -> None:
        """Give up our lanes at once (on a clean stop), instead of making the
        next dispatcher wait for the leases to run out."""
        with self.engine.begin() as conn:
            conn.execute(update(dispatch_lanes).where(dispatch_lanes.c.lease_owner == self.owner)
                         .values(lease_owner=None, lease_until_ms=0))
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def run_once(self) -> int:
        """A round on every lane of every target that no one else holds;
        commands settled (applied or failed)."""
        return sum(self.dispatch(name) for name in self.targets)

    # -- leasing and claiming ---------------------------------------------
    def _take_lane(self, conn: Connection, name: str, lane: int) -> bool:
        """Lease one lane of the target for a round; False when another
        dispatcher holds it."""
        now = self.clock.ms()
        mine = (dispatch_lanes.c.target == name) & (dispatch_lanes.c.lane == lane)
        # A row locked by another dispatcher's round (on PostgreSQL) is skipped,
        # not waited for: waiting would queue every dispatcher behind the
        # holder's transaction (even INSERT … ON CONFLICT DO NOTHING waits on a
        # locked row, hence the plain read first). SQLite has no row locks and
        # one writer, and the condition on the update settles a race there.
        if (name, lane) not in self._known_lanes:
            if conn.execute(select(dispatch_lanes.c.lane).where(mine)).first() is None:
                conn.execute(dialect_insert(conn)(dispatch_lanes).values(
                    target=name, lane=lane, lease_owner=None, lease_until_ms=0)
                    .on_conflict_do_nothing())
            self._known_lanes.add((name, lane))
        holder = conn.execute(select(dispatch_lanes.c.lease_owner, dispatch_lanes.c.lease_until_ms)
                              .where(mine).with_for_update(skip_locked=True)).first()
        if holder is None or (holder.lease_owner not in (None, self.owner)
                              and holder.lease_until_ms >= now):
            return False
        result = conn.execute(
            update(dispatch_lanes)
            .where(mine, (dispatch_lanes.c.lease_owner == self.owner)
                   | (dispatch_lanes.c.lease_until_ms < now))
            .values(lease_owner=self.owner, lease_until_ms=now + self.settings.lease_ms))
        return result.rowcount == 1

    def _free_lane(self, conn: Connection, name: str, lane: int) -> bool:
        """Give the lane back as this transaction commits; False when the lease
        ran out and it may be someone else's now (then nothing may be written).
        The row stays locked until the commit, so no one takes it sooner."""
        result = conn.execute(update(dispatch_lanes).where(
            dispatch_lanes.c.target == name, dispatch_lanes.c.lane == lane,
            dispatch_lanes.c.lease_owner == self.owner)
            .values(lease_owner=None, lease_until_ms=0))
        return result.rowcount == 1

    @staticmethod
    def _pending(conn: Connection, name: str, lane: int) -> bool:
        """Whether the lane holds anything to send: a read of one index entry,
        so an empty lane costs no lease write (and, on SQLite, no write lock)
        in every round of every worker. (Commands backing off count: telling
        them apart would read past every one of them.)"""
        return conn.execute(select(outbox.c.id).where(
            outbox.c.target == name, outbox.c.status == "pending", outbox.c.lane == lane)
            .limit(1)).first() is not None

    def _lanes(self, name: str) -> list[int]:
        """The lanes to try this round, each once, starting one further along
        each time so that dispatchers spread over them."""
        count = self.lanes[name]
        start = self._start[name]
        self._start[name] = (start + 1) % count
        return [(start + i) % count for i in range(count)] + self._stray_lanes(name, count)

    def _every_lane(self, name: str) -> list[int]:
        """The target's lanes and the strays last found past them."""
        return [*range(self.lanes[name]), *self._strays.get(name, (0, []))[1]]

    def _stray_lanes(self, name: str, count: int) -> list[int]:
        """Lanes at or past ``count`` that still hold pending commands: written
        while the target had more lanes (or by a worker that thought so). They
        are served too, or those commands would never go. Looked for every
        ``stray_check_ms`` (an empty index range when there are none)."""
        now = self.clock.ms()
        checked, found = self._strays.get(name, (None, []))
        if checked is None or now - checked >= self.settings.stray_check_ms:
            with self.engine.connect() as conn:
                found = sorted(conn.execute(
                    select(outbox.c.lane).where(outbox.c.target == name,
                                                outbox.c.status == "pending",
                                                outbox.c.lane >= count)
                    .distinct()).scalars())
            self._strays[name] = (now, found)
        return found

    def _breaker(self, conn: Connection, name: str, *, lock: bool = False) -> CircuitBreaker:
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

    def _count_failure(self, conn: Connection, name: str) -> CircuitBreaker:
        """One more failed call of the target, counted on its row: read under
        a lock, since lanes fail together when a target goes down, and two
        settlements that each read the run of failures and wrote it back plus
        one would count one failure where there were two."""
        breaker = self._breaker(conn, name, lock=True)
        was = breaker.state
        breaker.failure(self.clock.ms())
        self._save_breaker(conn, name, breaker)
        if breaker.state is CircuitState.OPEN and was is not CircuitState.OPEN:
            log.error("dispatch.circuit_opened", target=name, failures_in_a_row=breaker.failures,
                      until_ms=breaker.open_until_ms, after_trial=was is CircuitState.HALF_OPEN)
        return breaker

    def _save_breaker(self, conn: Connection, name: str, breaker: CircuitBreaker) -> None:
        conn.execute(update(target_leases).where(target_leases.c.target == name).values(
            circuit=breaker.state.value, circuit_until_ms=breaker.open_until_ms,
            consecutive_failures=breaker.failures))
        metrics.CIRCUIT_OPEN.labels(name).set(1 if breaker.state is CircuitState.OPEN else 0)

    def _claim(self, conn: Connection, name: str, lane: int, limit: int) -> list[Any]:
        """The lane's next commands to send, in outbox order, never letting a
        command overtake an earlier pending one of its aggregate or run before
        the command it depends on is applied."""
        now = self.clock.ms()
        candidates = list(conn.execute(
            select(*_SENDING).where(outbox.c.target == name, outbox.c.status == "pending",
                                    outbox.c.lane == lane, outbox.c.next_attempt_ms <= now)
            .order_by(outbox.c.id).limit(limit * self.settings.lookahead)))
        if not candidates:
            return []
        last = candidates[-1].id
        keys = {c.aggregate_key for c in candidates}
        # Commands waiting out a backoff hold back the later ones of their
        # aggregate, as does one in another lane (an aggregate is in one lane
        # unless the target's lane count changed); only those before the last
        # candidate matter, and bounding the search by it keeps it to the
        # candidates' stretch of the queue. One select per lane, so that each
        # is a range of the (target, status, lane, id) index: across lanes,
        # PostgreSQL would read every id below the last candidate, done
        # commands included.
        lanes = sorted({*self._every_lane(name), lane})
        per_lane = [
            select(outbox.c.aggregate_key, func.min(outbox.c.id).label("first"))
            .where(outbox.c.target == name, outbox.c.status == "pending",
                   outbox.c.lane == other, outbox.c.id < last,
                   *([outbox.c.next_attempt_ms > now] if other == lane else []),
                   outbox.c.aggregate_key.in_(keys))
            .group_by(outbox.c.aggregate_key) for other in lanes]
        waiting: dict[str, int] = {}
        for row in conn.execute(union_all(*per_lane) if len(per_lane) > 1 else per_lane[0]):
            waiting[row.aggregate_key] = min(row.first, waiting.get(row.aggregate_key, row.first))
        # A dependency is a record that must already exist at this target, and
        # must not be about to change: an earlier pending command still writing
        # it holds the dependent back (in this lane, seen below among the
        # candidates; in another, looked up here).
        needed = {c.depends_on for c in candidates if c.depends_on}
        applied: set[str] = set()
        elsewhere: dict[str, int] = {}
        if needed:
            ids = {d.partition(":")[2] for d in needed}
            applied = set(binder.for_target(conn, name, ids))
            if len(lanes) > 1:
                elsewhere = {f"{r.record_kind}:{r.record_id}": r.first for r in conn.execute(
                    select(outbox.c.record_kind, outbox.c.record_id,
                           func.min(outbox.c.id).label("first"))
                    .where(outbox.c.target == name, outbox.c.status == "pending",
                           outbox.c.lane != lane, outbox.c.id < last,
                           outbox.c.record_id.in_(ids))
                    .group_by(outbox.c.record_kind, outbox.c.record_id))}
        blocked: set[str] = set()
        batch = []
        ahead: set[str] = set()  # records an earlier pending command still writes
        for row in candidates:
            key = row.aggregate_key
            writes = f"{row.record_kind}:{row.record_id}" if row.record_kind else None
            if key in blocked or (key in waiting and waiting[key] < row.id):
                if writes:
                    ahead.add(writes)
                continue
            if row.depends_on and (row.depends_on not in applied or row.depends_on in ahead
                                   or elsewhere.get(row.depends_on, last) < row.id):
                # Not there yet, or about to change: wait, so the target's id
                # this command refers to is the one the earlier command leaves.
                blocked.add(key)
                if writes:
                    ahead.add(writes)
                continue
            batch.append(row)
            if writes:
                ahead.add(writes)
            if len(batch) >= limit:
                break
        return batch

    # -- one round: a claim, its calls, their settlement --------------------
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
        left = self._lanes(name)
        width = min(self.settings.parallel_rounds, self.lanes[name], len(left))
        if width < 2:
            return self._drain(name, left)
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as reader:
            behind = was_behind or self._backlog(reader, name)
            # Threads only for lanes no other dispatcher is sending on: in a fleet
            # the others' lanes would each cost a thread a lease attempt for nothing.
            held = self._held_elsewhere(reader, name) if behind else set()
        if not behind:  # (the reader is closed first: its snapshot would hold SQLite's WAL)
            return self._drain(name, left)
        left = [lane for lane in left if lane not in held]
        width = min(width, len(left))
        if width < 2:
            return self._drain(name, left)
        shares = [left[i::width] for i in range(width)]
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

    def _backlog(self, reader: Connection, name: str) -> bool:
        """Whether more commands wait for the target than one round claims:
        a count that stops there (an index range, whatever the queue's depth)."""
        most = self.targets[name].max_batch * self.settings.calls_per_claim
        waiting = select(outbox.c.id).where(outbox.c.target == name,
                                            outbox.c.status == "pending").limit(most + 1)
        count = reader.execute(select(func.count()).select_from(waiting.subquery()))
        return int(count.scalar_one()) > most

    def _held_elsewhere(self, reader: Connection, name: str) -> set[int]:
        """The target's lanes another dispatcher holds a live lease on now."""
        return set(reader.execute(select(dispatch_lanes.c.lane).where(
            dispatch_lanes.c.target == name, dispatch_lanes.c.lease_owner.is_not(None),
            dispatch_lanes.c.lease_owner != self.owner,
            dispatch_lanes.c.lease_until_ms >= self.clock.ms())).scalars())

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
        target = self.targets[name]
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as reader:
            while left and not self._pending(reader, name, left[0]):
                left.pop(0)
        if not left:
            return 0
        held: list[int] = []
        rows: list[Any] = []
        leased_at = self.clock.ms()  # no earlier than any lane's lease is taken from
        with self.engine.begin() as conn:
            breaker = self._breaker(conn, name)
            if not breaker.allows(self.clock.ms()):
                left.clear()
                return 0
            trial = breaker.state is CircuitState.HALF_OPEN
            limit = 1 if trial else target.max_batch * self.settings.calls_per_claim
            while left and len(rows) < limit:
                lane = left.pop(0)
                if (held and not self._pending(conn, name, lane)) \
                        or not self._take_lane(conn, name, lane):
                    continue
                claimed = self._claim(conn, name, lane, limit - len(rows))
                if claimed:
                    held.append(lane)
                    rows.extend(claimed)
                else:
                    self._free_lane(conn, name, lane)
            if len(rows) >= limit and not trial:
                self.behind.add(name)  # a full claim: more is ready than one round sends
            if not rows:
                return 0
            # The attempt is on record before the call: a dispatcher that dies
            # during it leaves a resend that knows it is one. The command's own
            # ``attempts`` moves when the call's result is settled (one write to
            # the outbox row per attempt, not two).
            sends = _sends(conn, [r.id for r in rows])
            calls = [(uuid.uuid4().hex, rows[i:i + target.max_batch])
                     for i in range(0, len(rows), target.max_batch)]
            for batch_id, batch in calls:
                _SENT.run(conn, [{"outbox_id": r.id, "attempt": sends[r.id],
                                  "correlation_id": r.correlation_id} for r in batch],
                          target=name, batch_id=batch_id, owner=self.owner,
                          started_at=self.clock.now())
            slots = self._reserve(conn, name, len(calls))
            payloads = [orjson.loads(r.payload) for r in rows]
            refs = _references(conn, name, _named(target, rows, payloads))
        commands = {r.id: OutboundCommand(r.id, name, r.kind, r.idempotency_key,
                                          r.aggregate_key, payload, r.correlation_id, refs,
                                          sends[r.id])
                    for r, payload in zip(rows, payloads, strict=True)}
        outcomes: list[tuple[str, list[Any], dict[str, RecordResult],
                             DeliveryError | None]] = []
        with _LaneHold(self, name, held, leased_at) as hold:
            for (batch_id, batch), slot in zip(calls, slots, strict=True):
                self._wait_for(slot)
                if not hold.kept():
                    # Another dispatcher has a lane and sends these commands: a call
                    # from here would send them again as first attempts. (Freeing
                    # the lanes below finds it gone and records nothing.)
                    log.warning("dispatch.lanes_lost", target=name, lanes=held,
                                unsent=sum(len(b) for _, b in calls[len(outcomes):]))
                    break
                results, failure = self._call(name, batch_id,
                                              [commands[r.id] for r in batch])
                outcomes.append((batch_id, batch, results, failure))
                if failure is not None:
                    break
        if self.crash_hook is not None:
            self.crash_hook("sent", name)
        with self.engine.begin() as conn:
            if [lane for lane in held if not self._free_lane(conn, name, lane)]:
                # Someone else holds a lane now and will resend; the keys make that safe.
                return 0
            # Read again: another lane's calls may have moved the breaker meanwhile.
            breaker = self._breaker(conn, name)
            unsent = [batch_id for batch_id, _ in calls[len(outcomes):]]
            if unsent:
                conn.execute(delete(delivery_attempts)
                             .where(delivery_attempts.c.batch_id.in_(unsent)))
            settled = 0
            for batch_id, batch, results, failure in outcomes:
                if failure is not None and failure.code == QUOTA_EXHAUSTED:
                    # Not a fault: the day's allocation is spent. Wait for the reset
                    # without counting an attempt or tripping the breaker.
                    self._defer(conn, batch, batch_id, failure)
                elif failure is not None:
                    metrics.TARGET_CALLS.labels(name, "transient" if failure.transient
                                                else "permanent").inc()
                    breaker = self._count_failure(conn, name)
                    log.warning("dispatch.call_failed", target=name, batch_id=batch_id,
                                commands=len(batch), code=failure.code, error=str(failure),
                                failures_in_a_row=breaker.failures,
                                circuit=breaker.state.value)
                    self._settle_failed_call(conn, batch, batch_id, failure, breaker.failures)
                else:
                    metrics.TARGET_CALLS.labels(name, "ok").inc()
                    if breaker.state is not CircuitState.CLOSED or breaker.failures:
                        breaker.success()  # a healthy target's row is not rewritten each call
                        self._save_breaker(conn, name, breaker)
                    if trial:
                        log.info("dispatch.circuit_closed", target=name)
                        self._resume(conn, name)
                    settled += self._settle(conn, name, batch, batch_id, results)
            return settled

    def _wait_for(self, slot_us: int) -> None:
        """Until a call's reserved slot (µs on the hub's clock)."""
        wait = (slot_us - self.clock.ms() * 1000) / 1_000_000
        if wait > 0:
            self.clock.sleep(wait)

    def _call(self, name: str, batch_id: str, commands: Sequence[OutboundCommand]
              ) -> tuple[dict[str, RecordResult], DeliveryError | None]:
        """One call to the target: the results, or the failure of the call as
        a whole."""
        target = self.targets[name]
        t0 = time.perf_counter()
        results: dict[str, RecordResult] = {}
        failure: DeliveryError | None = None
        with tracer.start_as_current_span("billbridge.dispatch", attributes={
                "billbridge.target": name, "billbridge.batch_size": len(commands),
                "billbridge.batch_id": batch_id}):
            try:
                results = self._send(target, commands)
            except DeliveryError as exc:
                failure = exc
        metrics.DELIVERY_SECONDS.labels(name).observe(time.perf_counter() - t0)
        return results, failure

    def _reserve(self, conn: Connection, name: str, calls: int) -> list[int]:
        """When each of a round's ``calls`` may go (µs on the hub's clock),
        reserved at the pace every dispatcher of the target shares (the
        vendor's limit is per account): a generic cell rate algorithm on the
        target's row, whose ``paced_until_us`` is when the next call is due;
        up to ``burst`` calls may go ahead of it. One update, in the claim's
        transaction; slots a round does not use (a call failed) go unused."""
        limit = self.targets[name].rate_limit
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

    def _resume(self, conn: Connection, name: str) -> None:
        """The target is back after its circuit was open: commands backing off
        because it was down go now, instead of each waiting out a backoff that
        grew while nothing could succeed (the token bucket still paces them)."""
        conn.execute(update(outbox).where(
            outbox.c.target == name, outbox.c.status == "pending",
            outbox.c.next_attempt_ms > self.clock.ms()).values(next_attempt_ms=self.clock.ms()))

    def _send(self, target: Target, commands: Sequence[OutboundCommand]) -> dict[str,
                                                                                  RecordResult]:
        """Send a batch; when the target refuses a whole batch, split it to find
        the records it refuses, so one bad record cannot hold up the rest."""
        try:
            return {r.idempotency_key: r for r in target.send(commands)}
        except DeliveryError as exc:
            if exc.transient or exc.code == ReasonCode.TARGET_AUTH.value:
                raise
            if len(commands) == 1:
                return {commands[0].idempotency_key: RecordResult(
                    commands[0].idempotency_key, ResultStatus.REJECTED, code=exc.code,
                    message=str(exc))}
            # The halves go again: a target that wrote part of the refused batch
            # must look for its markers before writing them a second time.
            again = [dataclasses.replace(c, attempt=c.attempt + 1) for c in commands]
            middle = len(again) // 2
            first = self._send(target, again[:middle])
            return first | self._send(target, again[middle:])

    def _settle(self, conn: Connection, name: str, rows: Sequence[Any], batch_id: str,
                results: Mapping[str, RecordResult]) -> int:
        """Record each command's result; the applied ones with one statement
        per table, since they are nearly all of them."""
        now = self.clock.now()
        applied: list[tuple[Any, str | None]] = []
        settled = 0
        for row in rows:
            result = results.get(row.idempotency_key)
            if result is None or result.status is ResultStatus.RETRY:
                detail = (result.message if result else None) or "no result for this record"
                self._reschedule(conn, row, batch_id, detail,
                                 result.retry_after if result else None)
                continue
            settled += 1
            if result.status is ResultStatus.APPLIED:
                applied.append((row, result.external_id))
            else:
                message = f"{name} rejected {row.kind} {row.record_id or row.id}: " \
                          f"{result.code}: {result.message}"
                self._fail(conn, row, batch_id, ReasonCode.TARGET_REJECTED, message)
        if applied:
            _DONE.run(conn, [{"row_id": row.id, "external_id": external_id}
                             for row, external_id in applied], at=now)
            # Every other attempt of the call was settled in the loop above.
            conn.execute(_APPLIED, {"in_batch": batch_id})
            binder.bind(conn, [{"system": name, "kind": row.record_kind, "external_id": external_id,
                              "canonical_id": row.record_id, "correlation_id": row.correlation_id}
                             for row, external_id in applied
                             if row.record_kind and row.record_id and external_id], at=now)
            for kind, count in Counter(row.kind for row, _ in applied).items():
                metrics.POSTINGS_CONFIRMED.labels(name, kind).inc(count)
            self._confirm(conn, name, [(row, external_id) for row, external_id in applied
                                       if row.kind in CONFIRMED_KINDS])
        return settled

    def _confirm(self, conn: Connection, name: str,
                 confirmed: Sequence[tuple[Any, str | None]]) -> None:
        """Tell the flows records now exist at the target (write-backs wait on it)."""
        if not confirmed:
            return
        at = self.clock.now().isoformat()
        ingest_many(conn, [{
            "type": "posting.confirmed", "id": f"confirmed:{name}:{row.idempotency_key}",
            "at": at, "correlation_id": row.correlation_id,
            "data": {"target": name, "kind": row.kind, "record_kind": row.record_kind,
                     "record_id": row.record_id, "external_id": external_id}}
            for row, external_id in confirmed], source=HUB_SOURCE, clock=self.clock)

    def _settle_failed_call(self, conn: Connection, rows: Sequence[Any], batch_id: str,
                            failure: DeliveryError, streak: int) -> None:
        """A call that failed as a whole says nothing about its records: they
        back off by the target's run of failed calls (``streak``, which the
        next good call ends), not by their own attempts, which earlier storms
        may have run up; the circuit breaker holds calls while the run goes on.
        So no record waits longer than the breaker's cooldown (unless the
        target asked for longer): a long outage ran the streak up, and every
        later command of a record's aggregate waits behind it, which after a
        trial call closed the circuit held whole projects back for minutes."""
        for row in rows:
            if failure.transient or failure.code == ReasonCode.TARGET_AUTH.value:
                self._reschedule(conn, row, batch_id, str(failure), failure.retry_after,
                                 backoff=streak, most=self.breaker_cooldown)
            else:
                self._fail(conn, row, batch_id, ReasonCode.TARGET_REJECTED, str(failure))

    def _defer(self, conn: Connection, rows: Sequence[Any], batch_id: str,
               failure: DeliveryError) -> None:
        until = self.clock.ms() + int((failure.retry_after or 3600) * 1000)
        for row in rows:
            self._attempt(conn, row.id, batch_id, "deferred", str(failure))
            conn.execute(update(outbox).where(outbox.c.id == row.id).values(
                attempts=row.attempts, next_attempt_ms=until, last_error=str(failure)))

    def _reschedule(self, conn: Connection, row: Any, batch_id: str, detail: str,
                    retry_after: float | None, backoff: int | None = None,
                    most: float | None = None) -> None:
        """Try ``row`` again later: after a backoff over ``backoff`` failures
        (by default its own attempts), never sooner than ``retry_after``, and
        (given ``most``) never later than a jittered ``most`` seconds unless
        ``retry_after`` says so."""
        attempts = row.attempts + 1
        self._attempt(conn, row.id, batch_id, "retry", detail)
        if self.policy.exhausted(attempts):
            self._fail(conn, row, batch_id, ReasonCode.RETRIES_EXHAUSTED,
                       f"gave up on {row.kind} {row.record_id or row.id} after {attempts} "
                       f"attempts; last error: {detail}", record_attempt=False)
            return
        delay = self.policy.delay(backoff or attempts, retry_after, self.rng)
        if most is not None:
            delay = min(delay, max(self.rng.uniform(most / 2, most), retry_after or 0.0))
        conn.execute(update(outbox).where(outbox.c.id == row.id).values(
            attempts=attempts, next_attempt_ms=self.clock.ms() + int(delay * 1000),
            last_error=detail))
        metrics.RETRIES.labels(row.target).inc()

    def _fail(self, conn: Connection, row: Any, batch_id: str, reason: ReasonCode,
              message: str, record_attempt: bool = True) -> None:
        conn.execute(update(outbox).where(outbox.c.id == row.id)
                     .values(status="failed", attempts=row.attempts + 1, last_error=message))
        if record_attempt:
            self._attempt(conn, row.id, batch_id, "rejected", message)
        open_exception(conn, reason=reason, stage="outbound", message=message,
                       correlation_id=row.correlation_id, at=self.clock.now(),
                       outbox_id=row.id, inbox_id=row.inbox_id, record_kind=row.record_kind,
                       record_id=row.record_id, raw=row.payload)

    def _attempt(self, conn: Connection, outbox_id: int, batch_id: str, outcome: str,
                 detail: str | None) -> None:
        _ATTEMPT.run(conn, [{"row_id": outbox_id, "detail": detail}], in_batch=batch_id,
                     outcome=outcome)


class _LaneHold:
    """The lanes a round holds, kept while its calls are out.

    A lease is the only thing that keeps two dispatchers from sending the same
    commands at once, and a round's calls can outlast it: a resend looks up
    each command's marker first, at the target's pace, and one slow answer
    takes the client's whole timeout. So while the round is between its claim
    and its settlement a thread renews its lanes every third of a lease, and
    before each call the round asks ``kept``: a renewal that finds a lane gone
    (its lease ran out and another dispatcher took it) means the commands are
    the other's to send now, and this round must send nothing more.

    The renewals stop after ``hold_leases`` leases (five minutes by default):
    a call that hangs that long (a vendor dripping its answer past every read
    timeout) would otherwise hold its lanes, and every command behind them,
    for ever. Its lanes then run out and another dispatcher resends, looking
    for markers first; this round sends nothing more.

    What is not covered: a process stopped whole (SIGSTOP, a paused VM) for
    longer than a lease, whose renewals stop with it, may finish a call
    already under way after another dispatcher resent it, as may a call hung
    past the limit. Only a fencing token at the target could stop that; no
    vendor here takes one.
    """

    def __init__(self, dispatcher: Dispatcher, name: str, lanes: Sequence[int],
                 leased_at: int) -> None:
        self.dispatcher, self.name, self.lanes = dispatcher, name, list(lanes)
        self.lease_ms = dispatcher.settings.lease_ms
        self.renewed_ms = leased_at  # when the claim's transaction began to take them
        self.lost = False
        self.overdue = False  # renewed for hold_leases leases: given up
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_renewing, daemon=True,
                                        name=f"billbridge-lanes-{name}")

    def __enter__(self) -> _LaneHold:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def kept(self) -> bool:
        """Whether the round still holds its lanes with at least two thirds of
        a lease to go (renewing them now when the last renewal is older)."""
        with self._lock:
            if self.lost or self.overdue:
                return False
            fresh = self.dispatcher.clock.ms() - self.renewed_ms < self.lease_ms / 3
        return fresh or self.renew()

    def renew(self) -> bool:
        """Extend every lane's lease from now, if the lane is still ours."""
        clock = self.dispatcher.clock
        with self._lock:
            if self.lost:
                return False
            with self.dispatcher.engine.begin() as conn:
                now = clock.ms()
                kept = conn.execute(update(dispatch_lanes).where(
                    dispatch_lanes.c.target == self.name,
                    dispatch_lanes.c.lane.in_(self.lanes),
                    dispatch_lanes.c.lease_owner == self.dispatcher.owner)
                    .values(lease_until_ms=now + self.lease_ms)).rowcount
            if kept < len(self.lanes):
                self.lost = True
            else:
                self.renewed_ms = now
            return not self.lost

    def _keep_renewing(self) -> None:
        # Real seconds, whatever the hub's clock: a test's manual clock does
        # not move while a call waits, and then nothing needs renewing.
        longest = self.dispatcher.settings.hold_leases * self.lease_ms / 1000
        limit = time.monotonic() + longest
        while not self._stop.wait(self.lease_ms / 3000):
            if time.monotonic() >= limit:
                with self._lock:
                    self.overdue = True
                log.error("dispatch.call_overdue", target=self.name, lanes=self.lanes,
                          seconds=longest)
                return
            try:
                if not self.renew():
                    return
            except Exception:  # the database is unreachable: the next kept() says so
                log.exception("dispatch.lane_renewal_failed", target=self.name,
                              lanes=self.lanes)


def _named(target: Target, rows: Sequence[Any],
           payloads: Sequence[Mapping[str, Any]]) -> list[str]:
    """The canonical ids the commands' payloads name in the fields the target
    resolves (its ``references``), or, when it does not say, in any top-level
    string."""
    fields: Mapping[str, Sequence[str]] | None = getattr(target, "references", None)
    if fields is None:
        named = {v for p in payloads for v in p.values() if isinstance(v, str) and v}
    else:
        named = {v for row, p in zip(rows, payloads, strict=True)
                 for v in (p.get(f) for f in fields.get(row.kind, ())) if isinstance(v, str) and v}
    return sorted(named)


def _references(conn: Connection, target: str, named: list[str]) -> dict[str, str]:
    """The target's ids for the canonical ids ``named`` (a project code, a
    customer id, a charge a reversal undoes). Where a record was written more
    than once (a charge posted again after re-pricing), the newest write that
    produced it wins: a reversal is a document of its own, not the record."""
    if not named:
        return {}
    if conn.dialect.name == "postgresql":
        # One array parameter, not an IN list of a thousand (each rendered and
        # bound in Python), and only done writes: PostgreSQL plans this on the
        # record index whatever the condition on the status.
        ids = bindparam("named", named, type_=ARRAY(String))
        writes = select(*_WRITES).where(outbox.c.target == target,
                                        outbox.c.record_id == any_(ids),
                                        outbox.c.status == "done")
    else:
        # Looked up by record only, and sifted here: a condition on the status
        # lets SQLite's planner pick the (target, status) index and read every
        # done command at each claim (at a million postings, 90 % of a dispatcher).
        writes = select(*_WRITES).where(outbox.c.target == target,
                                        outbox.c.record_id.in_(named))
    refs = binder.for_target(conn, target, named)
    newest: dict[str, tuple[int, str]] = {}
    for row in conn.execute(writes):
        if row.status != "done" or row.external_id is None or row.kind in REVERSING_KINDS:
            continue
        key = f"{row.record_kind}:{row.record_id}"
        if key not in newest or row.id > newest[key][0]:
            newest[key] = (row.id, row.external_id)
    refs.update({key: external_id for key, (_, external_id) in newest.items()})
    return refs


_WRITES = (outbox.c.id, outbox.c.record_kind, outbox.c.record_id, outbox.c.external_id,
           outbox.c.kind, outbox.c.status)


def _sends(conn: Connection, ids: Sequence[int]) -> dict[int, int]:
    """Which send of each command this one is (1 for the first): a command an
    operator put back in the queue is still a resend."""
    before: dict[int, int] = dict(conn.execute(
        select(delivery_attempts.c.outbox_id, func.count())
        .where(delivery_attempts.c.outbox_id.in_(ids))
        .group_by(delivery_attempts.c.outbox_id)).all())
    return {i: int(before.get(i, 0)) + 1 for i in ids}
