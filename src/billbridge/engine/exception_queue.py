"""The exception queue: what could not succeed, with a reason code, the raw
payload and three operator actions (retry as is, replay under the current
configuration, dismiss with a reason), each idempotent and audited."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, String, case, cast, func, literal, select, update

from billbridge.domain.reasons import ReasonCode
from billbridge.engine import audit, metrics
from billbridge.engine.aggregates import bump_pending
from billbridge.engine.wakeup import announce
from billbridge.store.tables import exceptions, inbox, outbox


class ExceptionStatus(StrEnum):
    OPEN = "open"
    RETRIED = "retried"
    REPLAYED = "replayed"
    DISMISSED = "dismissed"
    RESOLVED = "resolved"


class ExceptionNotFound(LookupError):
    pass


class ActionRefused(ValueError):
    """An operator action that cannot apply to this exception, with why."""


def open_exception(conn: Connection, *, reason: ReasonCode, stage: str, message: str,
                   correlation_id: str, at: datetime, inbox_id: int | None = None,
                   outbox_id: int | None = None, record_kind: str | None = None,
                   record_id: str | None = None, raw: str | None = None,
                   config_version: int | None = None) -> int:
    exc_id = conn.execute(exceptions.insert().values(
        reason=reason.value, message=message, status=ExceptionStatus.OPEN.value, stage=stage,
        inbox_id=inbox_id, outbox_id=outbox_id, record_kind=record_kind, record_id=record_id,
        raw=raw, correlation_id=correlation_id, config_version=config_version,
        created_at=at, updated_at=at,
    ).returning(exceptions.c.id)).scalar_one()
    metrics.EXCEPTIONS_OPENED.labels(reason.value).inc()
    return int(exc_id)


def get(conn: Connection, exc_id: int, *, lock: bool = False) -> Any:
    query = select(exceptions).where(exceptions.c.id == exc_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise ExceptionNotFound(f"no exception {exc_id}")
    return row


SHOWN_RAW_CHARS = 16 * 1024
"""How much of a raw payload a listing shows inline; the rest stays in the store."""
_RAW_LENGTH = func.length(exceptions.c.raw)
SHOWN = [*(c for c in exceptions.c if c.name != "raw"), case(
    (_RAW_LENGTH > SHOWN_RAW_CHARS,
     func.substr(exceptions.c.raw, 1, SHOWN_RAW_CHARS)
     + literal("\n… truncated for display: ") + cast(_RAW_LENGTH, String)
     + literal(" characters in all (billbridge exceptions list --json shows them whole)")),
    else_=exceptions.c.raw).label("raw")]
"""Every column of an exception, its raw payload cut for display by the store
itself, so a screen or an API page never carries a multi-MB payload."""


def shown(conn: Connection, exc_id: int) -> Any:
    """One exception as screens and the API show it (``SHOWN``)."""
    row = conn.execute(select(*SHOWN).where(exceptions.c.id == exc_id)).first()
    if row is None:
        raise ExceptionNotFound(f"no exception {exc_id}")
    return row


def list_open(conn: Connection, *, reason: str | None = None, limit: int = 100,
              whole: bool = False) -> list[Any]:
    """Open exceptions, oldest first; raw payloads cut for display unless ``whole``."""
    query = select(*(exceptions.c if whole else SHOWN)).where(
        exceptions.c.status == ExceptionStatus.OPEN.value)
    if reason:
        query = query.where(exceptions.c.reason == reason)
    return list(conn.execute(query.order_by(exceptions.c.id).limit(limit)))


def open_by_reason(conn: Connection) -> Counter[str]:
    rows = conn.execute(select(exceptions.c.reason)
                        .where(exceptions.c.status == ExceptionStatus.OPEN.value))
    return Counter(r.reason for r in rows)


_MALFORMED = ("inbox event {} was malformed: fix it at the source and send it again, or "
              "dismiss this exception")


def _malformed(conn: Connection, inbox_ids: Iterable[int]) -> set[int]:
    """Inbox events kept only raw: there is no canonical event to run again."""
    ids = list(inbox_ids)
    if not ids:
        return set()
    return set(conn.execute(select(inbox.c.id).where(
        inbox.c.id.in_(ids), inbox.c.payload.is_(None))).scalars())


def _requeue(conn: Connection, pins: Mapping[int, int | None]) -> None:
    """Put inbox events back in the queue as re-runs, pinned to a configuration
    version (None: the active one). Events already waiting are left as they are."""
    if not pins:
        return
    rows = list(conn.execute(select(inbox.c.id, inbox.c.aggregate_key).where(
        inbox.c.id.in_(list(pins)), inbox.c.status != "pending")))
    by_version: dict[int | None, list[int]] = {}
    for row in rows:
        by_version.setdefault(pins[row.id], []).append(row.id)
    for version, ids in by_version.items():
        conn.execute(update(inbox).where(inbox.c.id.in_(ids)).values(
            status="pending", config_version=version, waiting_on=None, replay=True))
    bump_pending(conn, Counter(row.aggregate_key for row in rows))


def _close(conn: Connection, excs: Sequence[Any], status: ExceptionStatus, actor: str,
           at: datetime, resolution: str | None) -> None:
    conn.execute(update(exceptions).where(exceptions.c.id.in_([e.id for e in excs])).values(
        status=status.value, updated_at=at, resolved_by=actor, resolution=resolution))
    audit.record_many(conn, [audit.Entry(
        at, actor, f"exception.{status.value}", f"exception:{e.id}",
        {"reason": e.reason, "resolution": resolution}, e.correlation_id) for e in excs])


def retry(conn: Connection, exc_id: int, *, actor: str, at: datetime) -> str:
    """Run the same work again as it was: resend the same command, or re-run the
    event under the configuration version it first ran under."""
    exc = get(conn, exc_id, lock=True)
    if exc.status != ExceptionStatus.OPEN.value:
        return str(exc.status)  # already acted on: a second click changes nothing
    if exc.outbox_id is not None:
        conn.execute(update(outbox).where(outbox.c.id == exc.outbox_id).values(
            status="pending", attempts=0, next_attempt_ms=0, last_error=None))
        announce(conn)
    elif exc.inbox_id is not None:
        if _malformed(conn, [exc.inbox_id]):
            raise ActionRefused(_MALFORMED.format(exc.inbox_id))
        _requeue(conn, {exc.inbox_id: exc.config_version})
    else:
        raise ActionRefused(f"exception {exc_id} has nothing to retry; dismiss it instead")
    _close(conn, [exc], ExceptionStatus.RETRIED, actor, at, None)
    return ExceptionStatus.RETRIED.value


def replay(conn: Connection, exc_id: int, *, actor: str, at: datetime) -> str:
    """Re-run the canonical event that caused this exception under the current
    configuration; a command it replaces is superseded, not sent."""
    exc = get(conn, exc_id, lock=True)
    if exc.status != ExceptionStatus.OPEN.value:
        return str(exc.status)
    refused = _replay(conn, [exc], actor, at)
    if refused:
        raise ActionRefused(refused[exc.id])
    return ExceptionStatus.REPLAYED.value


def _replay(conn: Connection, excs: Sequence[Any], actor: str, at: datetime) -> dict[int, str]:
    """Replay open exceptions together (a few statements however many); those
    that cannot be replayed are left untouched and returned with why."""
    commands = {e.outbox_id for e in excs if e.outbox_id is not None}
    origin = dict(conn.execute(select(outbox.c.id, outbox.c.inbox_id)
                               .where(outbox.c.id.in_(commands))).all()) if commands else {}
    events: dict[int, int | None] = {
        e.id: origin.get(e.outbox_id) if e.outbox_id is not None else e.inbox_id for e in excs}
    malformed = _malformed(conn, {i for i in events.values() if i is not None})
    refused = {e.id: (f"exception {e.id} has no source event to replay; retry it"
                      if events[e.id] is None else _MALFORMED.format(events[e.id]))
               for e in excs if events[e.id] is None or events[e.id] in malformed}
    chosen = [e for e in excs if e.id not in refused]
    if not chosen:
        return refused
    superseded = [e.outbox_id for e in chosen if e.outbox_id is not None]
    if superseded:
        conn.execute(update(outbox).where(outbox.c.id.in_(superseded))
                     .values(status="superseded"))
    _requeue(conn, {event: None for e in chosen if (event := events[e.id]) is not None})
    _close(conn, chosen, ExceptionStatus.REPLAYED, actor, at, None)
    return refused


def replay_open(conn: Connection, *, reason: str, actor: str, at: datetime,
                after: int = 0, limit: int = 500) -> tuple[list[int], list[int]]:
    """Replay up to ``limit`` open exceptions with ``reason`` and an id above
    ``after``, oldest first, in the caller's transaction: the backlog one
    configuration fix clears, a chunk per transaction. Each is audited as if
    clicked; one that cannot be replayed is left open and untouched. Returns
    (replayed ids, refused ids)."""
    query = select(exceptions).where(
        exceptions.c.status == ExceptionStatus.OPEN.value, exceptions.c.reason == reason,
        exceptions.c.id > after).order_by(exceptions.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()  # an operator clicking one of them waits for us
    excs = list(conn.execute(query))
    refused = _replay(conn, excs, actor, at)
    return [e.id for e in excs if e.id not in refused], sorted(refused)


def replay_backlog(engine: Engine, *, reason: str, actor: str,
                   now: Callable[[], datetime], chunk: int = 500) -> tuple[int, list[int]]:
    """Every open exception with ``reason`` replayed, ``chunk`` per transaction
    (a backlog of thousands must not hold the store for one long transaction).
    Returns how many were replayed and the ids that could not be."""
    replayed, after = 0, 0
    refused: list[int] = []
    while True:
        with engine.begin() as conn:
            done, skipped = replay_open(conn, reason=reason, actor=actor, at=now(),
                                        after=after, limit=chunk)
        if not done and not skipped:
            return replayed, refused
        replayed += len(done)
        refused += skipped
        after = max(done + skipped)


def dismiss(conn: Connection, exc_id: int, *, actor: str, at: datetime, reason: str) -> str:
    if not reason.strip():
        raise ActionRefused("say why the exception is dismissed")
    exc = get(conn, exc_id, lock=True)
    if exc.status != ExceptionStatus.OPEN.value:
        return str(exc.status)
    _close(conn, [exc], ExceptionStatus.DISMISSED, actor, at, reason.strip())
    return ExceptionStatus.DISMISSED.value
