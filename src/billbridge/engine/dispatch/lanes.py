"""Lanes: a target's commands are split by aggregate into lanes, and each lane
is sent by one dispatcher at a time, under a lease on its ``dispatch_lanes``
row. Which lanes a dispatcher tries and in what order, taking and giving back
a lease, lanes left past the target's count (strays), and the hold that
renews a round's leases while its calls are out."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping, Sequence

import structlog
from sqlalchemy import Connection, Engine, select, update

from billbridge.engine.clock import Clock
from billbridge.store.db import dialect_insert
from billbridge.store.tables import dispatch_lanes, outbox

log = structlog.get_logger("billbridge.dispatcher")


def pending(conn: Connection, name: str, lane: int) -> bool:
    """Whether the lane holds anything to send: a read of one index entry,
    so an empty lane costs no lease write (and, on SQLite, no write lock)
    in every round of every worker. (Commands backing off count: telling
    them apart would read past every one of them.)"""
    return conn.execute(select(outbox.c.id).where(
        outbox.c.target == name, outbox.c.status == "pending", outbox.c.lane == lane)
        .limit(1)).first() is not None


class Lanes:
    """The lanes of each target as one dispatcher (``owner``) sees them: the
    order it tries them in, its leases on them, and the strays."""

    def __init__(self, engine: Engine, clock: Clock, owner: str, counts: Mapping[str, int],
                 rng: random.Random, *, lease_ms: int, stray_check_ms: int) -> None:
        self.engine, self.clock, self.owner = engine, clock, owner
        self.lease_ms = lease_ms
        self.stray_check_ms = stray_check_ms
        self.counts = dict(counts)
        self._start = {name: rng.randrange(n) for name, n in self.counts.items()}
        # Lanes past a target's count that still hold commands (written when it
        # had more lanes), and when they were last looked for.
        self._strays: dict[str, tuple[int, list[int]]] = {}
        self._known: set[tuple[str, int]] = set()  # lane rows this process has seen

    def to_try(self, name: str) -> list[int]:
        """The lanes to try this round, each once, starting one further along
        each time so that dispatchers spread over them."""
        count = self.counts[name]
        start = self._start[name]
        self._start[name] = (start + 1) % count
        return [(start + i) % count for i in range(count)] + self._stray(name, count)

    def every(self, name: str) -> list[int]:
        """The target's lanes and the strays last found past them."""
        return [*range(self.counts[name]), *self._strays.get(name, (0, []))[1]]

    def _stray(self, name: str, count: int) -> list[int]:
        """Lanes at or past ``count`` that still hold pending commands: written
        while the target had more lanes (or by a worker that thought so). They
        are served too, or those commands would never go. Looked for every
        ``stray_check_ms`` (an empty index range when there are none)."""
        now = self.clock.ms()
        checked, found = self._strays.get(name, (None, []))
        if checked is None or now - checked >= self.stray_check_ms:
            with self.engine.connect() as conn:
                found = sorted(conn.execute(
                    select(outbox.c.lane).where(outbox.c.target == name,
                                                outbox.c.status == "pending",
                                                outbox.c.lane >= count)
                    .distinct()).scalars())
            self._strays[name] = (now, found)
        return found

    def take(self, conn: Connection, name: str, lane: int) -> bool:
        """Lease one lane of the target for a round; False when another
        dispatcher holds it."""
        now = self.clock.ms()
        mine = (dispatch_lanes.c.target == name) & (dispatch_lanes.c.lane == lane)
        # A row locked by another dispatcher's round (on PostgreSQL) is skipped,
        # not waited for: waiting would queue every dispatcher behind the
        # holder's transaction (even INSERT … ON CONFLICT DO NOTHING waits on a
        # locked row, hence the plain read first). SQLite has no row locks and
        # one writer, and the condition on the update settles a race there.
        if (name, lane) not in self._known:
            if conn.execute(select(dispatch_lanes.c.lane).where(mine)).first() is None:
                conn.execute(dialect_insert(conn)(dispatch_lanes).values(
                    target=name, lane=lane, lease_owner=None, lease_until_ms=0)
                    .on_conflict_do_nothing())
            self._known.add((name, lane))
        holder = conn.execute(select(dispatch_lanes.c.lease_owner, dispatch_lanes.c.lease_until_ms)
                              .where(mine).with_for_update(skip_locked=True)).first()
        if holder is None or (holder.lease_owner not in (None, self.owner)
                              and holder.lease_until_ms >= now):
            return False
        result = conn.execute(
            update(dispatch_lanes)
            .where(mine, (dispatch_lanes.c.lease_owner == self.owner)
                   | (dispatch_lanes.c.lease_until_ms < now))
            .values(lease_owner=self.owner, lease_until_ms=now + self.lease_ms))
        return result.rowcount == 1

    def free(self, conn: Connection, name: str, lane: int) -> bool:
        """Give the lane back as this transaction commits; False when the lease
        ran out and it may be someone else's now (then nothing may be written).
        The row stays locked until the commit, so no one takes it sooner."""
        result = conn.execute(update(dispatch_lanes).where(
            dispatch_lanes.c.target == name, dispatch_lanes.c.lane == lane,
            dispatch_lanes.c.lease_owner == self.owner)
            .values(lease_owner=None, lease_until_ms=0))
        return result.rowcount == 1

    def renew(self, name: str, lanes: Sequence[int]) -> tuple[int, bool]:
        """Extend the leases of ``lanes`` from now, where they are still ours:
        when it was done, and whether every one of them was."""
        with self.engine.begin() as conn:
            now = self.clock.ms()
            kept = conn.execute(update(dispatch_lanes).where(
                dispatch_lanes.c.target == name,
                dispatch_lanes.c.lane.in_(lanes),
                dispatch_lanes.c.lease_owner == self.owner)
                .values(lease_until_ms=now + self.lease_ms)).rowcount
        return now, kept == len(lanes)

    def release(self) -> None:
        """Give up every lane this dispatcher holds at once."""
        with self.engine.begin() as conn:
            conn.execute(update(dispatch_lanes).where(dispatch_lanes.c.lease_owner == self.owner)
                         .values(lease_owner=None, lease_until_ms=0))

    def held_elsewhere(self, reader: Connection, name: str) -> set[int]:
        """The target's lanes another dispatcher holds a live lease on now."""
        return set(reader.execute(select(dispatch_lanes.c.lane).where(
            dispatch_lanes.c.target == name, dispatch_lanes.c.lease_owner.is_not(None),
            dispatch_lanes.c.lease_owner != self.owner,
            dispatch_lanes.c.lease_until_ms >= self.clock.ms())).scalars())


class LaneHold:
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

    def __init__(self, leases: Lanes, name: str, lanes: Sequence[int], leased_at: int,
                 hold_leases: int) -> None:
        self.leases, self.name, self.lanes = leases, name, list(lanes)
        self.lease_ms = leases.lease_ms
        self.hold_leases = hold_leases
        self.renewed_ms = leased_at  # when the claim's transaction began to take them
        self.lost = False
        self.overdue = False  # renewed for hold_leases leases: given up
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_renewing, daemon=True,
                                        name=f"billbridge-lanes-{name}")

    def __enter__(self) -> LaneHold:
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
            fresh = self.leases.clock.ms() - self.renewed_ms < self.lease_ms / 3
        return fresh or self.renew()

    def renew(self) -> bool:
        """Extend every lane's lease from now, if the lane is still ours."""
        with self._lock:
            if self.lost:
                return False
            now, every = self.leases.renew(self.name, self.lanes)
            if every:
                self.renewed_ms = now
            else:
                self.lost = True
            return not self.lost

    def _keep_renewing(self) -> None:
        # Real seconds, whatever the hub's clock: a test's manual clock does
        # not move while a call waits, and then nothing needs renewing.
        longest = self.hold_leases * self.lease_ms / 1000
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
