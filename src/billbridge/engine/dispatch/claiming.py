"""Claiming: the commands a round sends from a lane, in outbox order, never
one ahead of an earlier command of its aggregate or of the record it depends
on; the attempts recorded before the call; and the target's ids for the
records the commands refer to."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Connection, String, any_, bindparam, func, select, union_all

from billbridge.connectors.base import OutboundCommand, Target
from billbridge.store import binder
from billbridge.store.bulk import Bulk
from billbridge.store.tables import delivery_attempts, outbox

REVERSING_KINDS = ("time_charge.reverse",)
"""Commands that undo a record at the target: their id is not the record's."""

_SENDING = [outbox.c[name] for name in (
    "id", "target", "kind", "idempotency_key", "aggregate_key", "payload", "correlation_id",
    "inbox_id", "record_kind", "record_id", "attempts", "depends_on")]
"""What sending a command needs (reading whole rows parses timestamps nobody uses)."""
_CHOOSING = [outbox.c[name] for name in (
    "id", "aggregate_key", "record_kind", "record_id", "depends_on")]
"""What choosing among the candidates needs: read for ``lookahead`` times the
commands sent, so no payload (most of a row's bytes) among them."""
_SENT = Bulk(lambda _: delivery_attempts.insert().values(
    outbox_id=bindparam("outbox_id"), target=bindparam("target"),
    batch_id=bindparam("batch_id"), attempt=bindparam("attempt"), owner=bindparam("owner"),
    started_at=bindparam("started_at"), outcome="sent",
    correlation_id=bindparam("correlation_id")))
_WRITES = (outbox.c.id, outbox.c.record_kind, outbox.c.record_id, outbox.c.external_id,
           outbox.c.kind, outbox.c.status)

Call = tuple[str, list[Any]]
"""One call of a round: its batch id and the outbox rows it sends."""


def claim(conn: Connection, name: str, lane: int, limit: int, *, lanes: Collection[int],
          now: int, lookahead: int) -> list[Any]:
    """The lane's next commands to send, in outbox order, never letting a
    command overtake an earlier pending one of its aggregate or run before
    the command it depends on is applied. ``lanes`` are every lane of the
    target that may hold commands; when the next ``limit`` commands do not
    all go, ``lookahead`` candidates per command wanted are read, to fill the
    batch past the blocked ones."""
    others = sorted({*lanes, lane})
    ready = (outbox.c.target == name, outbox.c.status == "pending", outbox.c.lane == lane,
             outbox.c.next_attempt_ms <= now)
    # At month-end the next ``limit`` commands nearly always all go: read just
    # those, whole. (What may go from a window is the same whatever its size,
    # up to its end, so a full batch from it is the batch the wider one gives.)
    window = list(conn.execute(select(*_SENDING).where(*ready).order_by(outbox.c.id)
                               .limit(limit)))
    if not window:
        return []
    picked = _choose(conn, name, lane, others, window, limit, now)
    if len(picked) >= limit or len(window) < limit or lookahead <= 1:
        return picked
    # Some were held back: look further past them, without payloads (most of
    # a row's bytes), and read whole only the commands chosen, by id (the
    # lane's lease keeps them pending meanwhile).
    candidates = list(conn.execute(select(*_CHOOSING).where(*ready).order_by(outbox.c.id)
                                   .limit(limit * lookahead)))
    chosen = [row.id for row in _choose(conn, name, lane, others, candidates, limit, now)]
    return list(conn.execute(select(*_SENDING).where(outbox.c.id.in_(chosen))
                             .order_by(outbox.c.id))) if chosen else []


def _choose(conn: Connection, name: str, lane: int, lanes: Sequence[int],
            candidates: Sequence[Any], limit: int, now: int) -> list[Any]:
    """The candidates that may go now, in order, up to ``limit``."""
    waiting = _waiting(conn, name, lane, lanes, candidates, now)
    applied, elsewhere = _dependencies(conn, name, lane, lanes, candidates)
    return _pick(candidates, limit, waiting, applied, elsewhere)


def _waiting(conn: Connection, name: str, lane: int, lanes: Sequence[int],
             candidates: Sequence[Any], now: int) -> dict[str, int]:
    """The first pending command of each candidate's aggregate that is not a
    candidate itself, where it comes before the last candidate."""
    # Commands waiting out a backoff hold back the later ones of their
    # aggregate, as does one in another lane (an aggregate is in one lane
    # unless the target's lane count changed); only those before the last
    # candidate matter, and bounding the search by it keeps it to the
    # candidates' stretch of the queue. One select per lane, so that each
    # is a range of the (target, status, lane, id) index: across lanes,
    # PostgreSQL would read every id below the last candidate, done
    # commands included.
    last = candidates[-1].id
    keys = {c.aggregate_key for c in candidates}
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
    return waiting


def _dependencies(conn: Connection, name: str, lane: int, lanes: Sequence[int],
                  candidates: Sequence[Any]) -> tuple[set[str], dict[str, int]]:
    """Of the records the candidates depend on: those that exist at the
    target, and the first pending command in another lane still writing each."""
    # A dependency is a record that must already exist at this target, and
    # must not be about to change: an earlier pending command still writing
    # it holds the dependent back (in this lane, seen among the candidates;
    # in another, looked up here).
    needed = {c.depends_on for c in candidates if c.depends_on}
    if not needed:
        return set(), {}
    ids = {d.partition(":")[2] for d in needed}
    applied = set(binder.for_target(conn, name, ids))
    if len(lanes) == 1:
        return applied, {}
    elsewhere = {f"{r.record_kind}:{r.record_id}": r.first for r in conn.execute(
        select(outbox.c.record_kind, outbox.c.record_id, func.min(outbox.c.id).label("first"))
        .where(outbox.c.target == name, outbox.c.status == "pending",
               outbox.c.lane != lane, outbox.c.id < candidates[-1].id,
               outbox.c.record_id.in_(ids))
        .group_by(outbox.c.record_kind, outbox.c.record_id))}
    return applied, elsewhere


def _pick(candidates: Sequence[Any], limit: int, waiting: Mapping[str, int],
          applied: set[str], elsewhere: Mapping[str, int]) -> list[Any]:
    """The candidates that may go now, in order, up to ``limit``."""
    last = candidates[-1].id
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


def backlog(reader: Connection, name: str, most: int) -> bool:
    """Whether more than ``most`` commands wait for the target: a count that
    stops there (an index range, whatever the queue's depth)."""
    waiting = select(outbox.c.id).where(outbox.c.target == name,
                                        outbox.c.status == "pending").limit(most + 1)
    count = reader.execute(select(func.count()).select_from(waiting.subquery()))
    return int(count.scalar_one()) > most


def record_sends(conn: Connection, name: str, owner: str, calls: Sequence[Call],
                 at: datetime) -> dict[int, int]:
    """Put the round's attempts on record before its calls, so that a
    dispatcher dying during one leaves a resend that knows it is one; which
    send of each command this is. (The command's own ``attempts`` moves when
    the result is settled: one write to the outbox row per attempt, not two.)"""
    sends = _sends(conn, [r.id for _, batch in calls for r in batch])
    for batch_id, batch in calls:
        _SENT.run(conn, [{"outbox_id": r.id, "attempt": sends[r.id],
                          "correlation_id": r.correlation_id} for r in batch],
                  target=name, batch_id=batch_id, owner=owner, started_at=at)
    return sends


def _sends(conn: Connection, ids: Sequence[int]) -> dict[int, int]:
    """Which send of each command this one is (1 for the first): a command an
    operator put back in the queue is still a resend."""
    before: dict[int, int] = dict(conn.execute(
        select(delivery_attempts.c.outbox_id, func.count())
        .where(delivery_attempts.c.outbox_id.in_(ids))
        .group_by(delivery_attempts.c.outbox_id)).all())
    return {i: int(before.get(i, 0)) + 1 for i in ids}


def calls_of(rows: Sequence[Any], max_batch: int) -> list[Call]:
    """The claimed rows in calls of the target's batch size, in order."""
    return [(uuid.uuid4().hex, list(rows[i:i + max_batch]))
            for i in range(0, len(rows), max_batch)]


def commands(name: str, rows: Sequence[Any], payloads: Sequence[Mapping[str, Any]],
             refs: Mapping[str, str], sends: Mapping[int, int]) -> dict[int, OutboundCommand]:
    """The claimed rows as the target receives them, each with the target's
    ids for the records the round's payloads name."""
    return {r.id: OutboundCommand(r.id, name, r.kind, r.idempotency_key, r.aggregate_key,
                                  payload, r.correlation_id, refs, sends[r.id])
            for r, payload in zip(rows, payloads, strict=True)}


def named(target: Target, rows: Sequence[Any],
          payloads: Sequence[Mapping[str, Any]]) -> list[str]:
    """The canonical ids the commands' payloads name in the fields the target
    resolves (its ``references``), or, when it does not say, in any top-level
    string."""
    fields: Mapping[str, Sequence[str]] | None = getattr(target, "references", None)
    if fields is None:
        found = {v for p in payloads for v in p.values() if isinstance(v, str) and v}
    else:
        found = {v for row, p in zip(rows, payloads, strict=True)
                 for v in (p.get(f) for f in fields.get(row.kind, ())) if isinstance(v, str) and v}
    return sorted(found)


def references(conn: Connection, target: str, named: list[str]) -> dict[str, str]:
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
