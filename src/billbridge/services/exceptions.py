"""The exception queue: pages, one exception, the operator's actions (retry,
replay, dismiss) one by one or in bulk, and a backlog replayed by reason."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, func, or_, select

from billbridge.domain.reasons import ReasonCode
from billbridge.engine import exception_queue
from billbridge.errors import BillbridgeError, Conflict, Invalid, NotFound
from billbridge.services._rows import plain
from billbridge.store.tables import exceptions, inbox, outbox

Action = Literal["retry", "replay", "dismiss"]
ACTIONS: tuple[Action, ...] = ("retry", "replay", "dismiss")


def known_reason(reason: str | None) -> str | None:
    """``reason`` if it is a reason code; Invalid naming the nearest and every
    known one otherwise (a filter on a misspelt code would match nothing, quietly)."""
    if reason is None or reason == "" or reason in ReasonCode.__members__:
        return reason or None
    near = difflib.get_close_matches(reason.upper(), list(ReasonCode.__members__), n=1)
    raise Invalid(f"unknown reason code {reason!r}" + (f"; did you mean {near[0]}?" if near
                                                       else "")
                  + f" (known: {', '.join(ReasonCode.__members__)})")


def page(conn: Connection, *, status: str, reason: str | None, cursor: int | None,
         limit: int) -> list[dict[str, Any]]:
    """Exceptions with ``status`` (and ``reason``) after ``cursor``, raw payloads cut."""
    reason = known_reason(reason)
    query = select(*exception_queue.SHOWN).where(exceptions.c.status == status)
    if reason:
        query = query.where(exceptions.c.reason == reason)
    if cursor is not None:
        query = query.where(exceptions.c.id > cursor)
    return plain(conn.execute(query.order_by(exceptions.c.id).limit(limit)))


def get(conn: Connection, exc_id: int) -> dict[str, Any]:
    try:
        return plain([exception_queue.shown(conn, exc_id)])[0]
    except exception_queue.ExceptionNotFound as exc:
        raise NotFound(str(exc)) from None


def open_list(conn: Connection, *, reason: str | None = None, limit: int = 100,
              whole: bool = False) -> list[Any]:
    """Open exceptions, oldest first; raw payloads cut for display unless ``whole``."""
    return exception_queue.list_open(conn, reason=known_reason(reason), limit=limit,
                                     whole=whole)


def open_reasons(conn: Connection) -> list[str]:
    """The reason codes that have open exceptions, sorted."""
    return sorted(exception_queue.open_by_reason(conn))


@dataclass(frozen=True)
class Acted:
    id: int
    status: str


def act(engine: Engine, exc_id: int, action: Action, *, actor: str, at: datetime,
        reason: str | None = None) -> Acted:
    """One action on one exception, in its own transaction: NotFound, or
    Conflict (code ACTION_REFUSED) saying why it does not apply."""
    if action not in ACTIONS:
        raise Invalid(f"no action {action!r}: use one of {', '.join(ACTIONS)}")
    with engine.begin() as conn:
        try:
            if action == "dismiss":
                status = exception_queue.dismiss(conn, exc_id, actor=actor, at=at,
                                                 reason=reason or "")
            elif action == "retry":
                status = exception_queue.retry(conn, exc_id, actor=actor, at=at)
            else:
                status = exception_queue.replay(conn, exc_id, actor=actor, at=at)
        except exception_queue.ExceptionNotFound as exc:
            raise NotFound(str(exc)) from None
        except exception_queue.ActionRefused as exc:
            raise Conflict(str(exc), code="ACTION_REFUSED") from None
    return Acted(exc_id, status)


@dataclass(frozen=True)
class Refusal:
    id: int
    why: str


def act_many(engine: Engine, ids: Iterable[int], action: Action, *, actor: str,
             now: Callable[[], datetime], reason: str | None = None
             ) -> list[Acted | Refusal]:
    """The action on each id in turn, each in its own transaction; one refused
    does not stop the others."""
    results: list[Acted | Refusal] = []
    for exc_id in ids:
        try:
            results.append(act(engine, exc_id, action, actor=actor, at=now(), reason=reason))
        except BillbridgeError as exc:
            results.append(Refusal(exc_id, exc.message))
    return results


def replay_backlog(engine: Engine, *, reason: str, actor: str,
                   now: Callable[[], datetime]) -> tuple[int, list[int]]:
    """Every open exception with ``reason`` replayed, in chunks: how many were,
    and the ids that could not be."""
    reason = str(known_reason(reason))
    return exception_queue.replay_backlog(engine, reason=reason, actor=actor, now=now)


@dataclass(frozen=True)
class Outcome:
    """What became of the work an action sent back: ``settled`` once a worker ran it."""

    settled: bool
    said: str


def newest_id(conn: Connection) -> int:
    """The number of the newest exception: what an action's outcome counts from."""
    return int(conn.execute(select(func.max(exceptions.c.id))).scalar() or 0)


def outcome(conn: Connection, exc_id: int, action: Action, *, since: int) -> Outcome:
    """After a retry or replay of ``exc_id`` (when ``since`` was the newest
    exception): done (with the target's id), failed again (the new exception's
    number and reason), or still queued."""
    exc = conn.execute(select(exceptions).where(exceptions.c.id == exc_id)).first()
    if exc is None:
        raise NotFound(f"no exception {exc_id}")
    after = select(exceptions.c.id, exceptions.c.reason).where(
        exceptions.c.id > max(since, exc_id))
    same = [exceptions.c.correlation_id == exc.correlation_id]
    if exc.record_id is not None:
        same.append((exceptions.c.record_kind == exc.record_kind)
                    & (exceptions.c.record_id == exc.record_id))
    again = conn.execute(after.where(or_(*same)).order_by(exceptions.c.id)).first()
    if again is not None:
        word = "still" if again.reason == exc.reason else "now"
        return Outcome(True, f"{word} {again.reason}: exception {again.id} opened")
    if exc.outbox_id is not None and action == "retry":
        sent = conn.execute(select(outbox.c.status, outbox.c.target, outbox.c.external_id)
                            .where(outbox.c.id == exc.outbox_id)).first()
        if sent is not None and sent.status == "done":
            return Outcome(True, f"done: {sent.target} holds it as {sent.external_id}")
        return Outcome(False, "queued: its command waits for a dispatcher")
    event_id = exc.inbox_id if exc.inbox_id is not None else conn.execute(
        select(outbox.c.inbox_id).where(outbox.c.id == exc.outbox_id)).scalar()
    ran = conn.execute(select(inbox.c.status, inbox.c.waiting_on)
                       .where(inbox.c.id == event_id)).first()
    if ran is None or ran.status == "pending":
        return Outcome(False, "queued: its event waits for a worker")
    if ran.status == "parked":
        return Outcome(True, f"parked, waiting on {ran.waiting_on}")
    pending = conn.execute(select(outbox.c.id).where(
        outbox.c.inbox_id == event_id, outbox.c.status == "pending").limit(1)).first()
    if pending is not None:
        return Outcome(False, "processed; its commands wait for a dispatcher")
    return Outcome(True, "done: nothing is left open for it")


@dataclass(frozen=True)
class Waiting:
    """An open exception, or work still parked, as an operator sees it."""

    record: str | None
    reason: str
    message: str


def waiting(conn: Connection) -> list[Waiting]:
    """Every open exception, then every parked event (it waits on something
    that has not come) with its park reason."""
    found = [Waiting(e.record_id, e.reason, e.message)
             for e in exception_queue.list_open(conn, limit=10_000)]
    for row in conn.execute(select(inbox.c.payload, inbox.c.waiting_on)
                            .where(inbox.c.status == "parked")):
        record = json.loads(row.payload)["data"].get("id")
        found.append(Waiting(record, "PROJECT_UNKNOWN", f"parked, waiting on {row.waiting_on}"))
    return found
