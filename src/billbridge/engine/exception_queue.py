"""The exception queue: what could not succeed, with a reason code, the raw
payload and three operator actions (retry as is, replay under the current
configuration, dismiss with a reason), each idempotent and audited."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from billbridge.domain.reasons import ReasonCode
from billbridge.engine import audit, metrics
from billbridge.engine.aggregates import bump_pending
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


def list_open(conn: Connection, *, reason: str | None = None, limit: int = 100) -> list[Any]:
    query = select(exceptions).where(exceptions.c.status == ExceptionStatus.OPEN.value)
    if reason:
        query = query.where(exceptions.c.reason == reason)
    return list(conn.execute(query.order_by(exceptions.c.id).limit(limit)))


def open_by_reason(conn: Connection) -> Counter[str]:
    rows = conn.execute(select(exceptions.c.reason)
                        .where(exceptions.c.status == ExceptionStatus.OPEN.value))
    return Counter(r.reason for r in rows)


def _requeue_inbox(conn: Connection, inbox_id: int, pin_version: int | None,
                   replay: bool) -> None:
    row = conn.execute(select(inbox.c.aggregate_key, inbox.c.status, inbox.c.payload)
                       .where(inbox.c.id == inbox_id)).one()
    if row.payload is None:
        raise ActionRefused(f"inbox event {inbox_id} was malformed: fix it at the source and "
                            "send it again, or dismiss this exception")
    if row.status == "pending":
        return
    conn.execute(update(inbox).where(inbox.c.id == inbox_id).values(
        status="pending", config_version=pin_version, waiting_on=None, replay=replay))
    bump_pending(conn, Counter({row.aggregate_key: 1}))


def _close(conn: Connection, exc: Any, status: ExceptionStatus, actor: str, at: datetime,
           resolution: str | None) -> None:
    conn.execute(update(exceptions).where(exceptions.c.id == exc.id).values(
        status=status.value, updated_at=at, resolved_by=actor, resolution=resolution))
    audit.record(conn, at=at, actor=actor, action=f"exception.{status.value}",
                 subject=f"exception:{exc.id}",
                 detail={"reason": exc.reason, "resolution": resolution},
                 correlation_id=exc.correlation_id)


def retry(conn: Connection, exc_id: int, *, actor: str, at: datetime) -> str:
    """Run the same work again as it was: resend the same command, or re-run the
    event under the configuration version it first ran under."""
    exc = get(conn, exc_id, lock=True)
    if exc.status != ExceptionStatus.OPEN.value:
        return str(exc.status)  # already acted on: a second click changes nothing
    if exc.outbox_id is not None:
        conn.execute(update(outbox).where(outbox.c.id == exc.outbox_id).values(
            status="pending", attempts=0, next_attempt_ms=0, last_error=None))
    elif exc.inbox_id is not None:
        _requeue_inbox(conn, exc.inbox_id, exc.config_version, replay=True)
    else:
        raise ActionRefused(f"exception {exc_id} has nothing to retry; dismiss it instead")
    _close(conn, exc, ExceptionStatus.RETRIED, actor, at, None)
    return ExceptionStatus.RETRIED.value


def replay(conn: Connection, exc_id: int, *, actor: str, at: datetime) -> str:
    """Re-run the canonical event that caused this exception under the current
    configuration; a command it replaces is superseded, not sent."""
    exc = get(conn, exc_id, lock=True)
    if exc.status != ExceptionStatus.OPEN.value:
        return str(exc.status)
    inbox_id = exc.inbox_id
    if exc.outbox_id is not None:
        command = conn.execute(select(outbox.c.inbox_id).where(outbox.c.id == exc.outbox_id)).one()
        conn.execute(update(outbox).where(outbox.c.id == exc.outbox_id)
                     .values(status="superseded"))
        inbox_id = command.inbox_id
    if inbox_id is None:
        raise ActionRefused(f"exception {exc_id} has no source event to replay; retry it")
    _requeue_inbox(conn, inbox_id, None, replay=True)
    _close(conn, exc, ExceptionStatus.REPLAYED, actor, at, None)
    return ExceptionStatus.REPLAYED.value


def replay_open(conn: Connection, *, reason: str, actor: str, at: datetime,
                after: int = 0, limit: int = 500) -> tuple[list[int], list[int]]:
    """Replay up to ``limit`` open exceptions with ``reason`` and an id above
    ``after``, oldest first, in the caller's transaction: the backlog one
    configuration fix clears, a chunk per transaction. Each is replayed and
    audited as if clicked; one that cannot be replayed is left open and
    untouched. Returns (replayed ids, refused ids)."""
    ids = list(conn.execute(select(exceptions.c.id).where(
        exceptions.c.status == ExceptionStatus.OPEN.value, exceptions.c.reason == reason,
        exceptions.c.id > after).order_by(exceptions.c.id).limit(limit)).scalars())
    replayed, refused = [], []
    for exc_id in ids:
        savepoint = conn.begin_nested()
        try:
            replay(conn, exc_id, actor=actor, at=at)
        except ActionRefused:
            savepoint.rollback()
            refused.append(exc_id)
            continue
        savepoint.commit()
        replayed.append(exc_id)
    return replayed, refused


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
    _close(conn, exc, ExceptionStatus.DISMISSED, actor, at, reason.strip())
    return ExceptionStatus.DISMISSED.value
