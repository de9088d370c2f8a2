"""Settling: what came back from a call, recorded in the round's last
transaction. An applied command is ``done`` with the target's id and bound in
the xref; a refused one opens an exception; a transient fault backs off and
tries again later."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from billbridge.connectors.base import DeliveryError, RecordResult, ResultStatus
from billbridge.domain.events import HUB_SOURCE
from billbridge.domain.reasons import ReasonCode
from billbridge.engine import metrics
from billbridge.engine.clock import Clock
from billbridge.engine.exception_queue import open_exception
from billbridge.engine.inbox import ingest_many
from billbridge.engine.policy import RetryPolicy
from billbridge.store import binder
from billbridge.store.bulk import Bulk
from billbridge.store.tables import delivery_attempts, outbox

CONFIRMED_KINDS = frozenset({"customer.upsert", "project.upsert", "invoice.create"})
"""Commands whose confirmation other work waits on: it becomes a
``posting.confirmed`` event in the inbox, in the same transaction."""

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


def forget_unsent(conn: Connection, batch_ids: Sequence[str]) -> None:
    """The attempts recorded for calls the round never made: they stay
    pending, as if never claimed."""
    if batch_ids:
        conn.execute(delete(delivery_attempts).where(delivery_attempts.c.batch_id.in_(batch_ids)))


class Settling:
    """Records results for one dispatcher: its clock, retry policy and jitter."""

    def __init__(self, clock: Clock, policy: RetryPolicy, rng: random.Random,
                 breaker_cooldown: float) -> None:
        self.clock, self.policy, self.rng = clock, policy, rng
        self.breaker_cooldown = breaker_cooldown

    def settle(self, conn: Connection, name: str, rows: Sequence[Any], batch_id: str,
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
                self.reschedule(conn, row, batch_id, detail,
                                result.retry_after if result else None)
                continue
            settled += 1
            if result.status is ResultStatus.APPLIED:
                applied.append((row, result.external_id))
            else:
                message = f"{name} rejected {row.kind} {row.record_id or row.id}: " \
                          f"{result.code}: {result.message}"
                self.fail(conn, row, batch_id, ReasonCode.TARGET_REJECTED, message)
        if applied:
            _DONE.run(conn, [{"row_id": row.id, "external_id": external_id}
                             for row, external_id in applied], at=now)
            # Every other attempt of the call was settled in the loop above.
            conn.execute(_APPLIED, {"in_batch": batch_id})
            binder.bind(conn, [{"system": name, "kind": row.record_kind,
                                "external_id": external_id, "canonical_id": row.record_id,
                                "correlation_id": row.correlation_id}
                               for row, external_id in applied
                               if row.record_kind and row.record_id and external_id], at=now)
            for kind, count in Counter(row.kind for row, _ in applied).items():
                metrics.POSTINGS_CONFIRMED.labels(name, kind).inc(count)
            self.confirm(conn, name, [(row, external_id) for row, external_id in applied
                                      if row.kind in CONFIRMED_KINDS])
        return settled

    def confirm(self, conn: Connection, name: str,
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

    def failed_call(self, conn: Connection, rows: Sequence[Any], batch_id: str,
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
                self.reschedule(conn, row, batch_id, str(failure), failure.retry_after,
                                backoff=streak, most=self.breaker_cooldown)
            else:
                self.fail(conn, row, batch_id, ReasonCode.TARGET_REJECTED, str(failure))

    def defer(self, conn: Connection, rows: Sequence[Any], batch_id: str,
              failure: DeliveryError) -> None:
        """The target's quota for the day is spent: not a fault. The commands
        wait for the reset without counting an attempt."""
        until = self.clock.ms() + int((failure.retry_after or 3600) * 1000)
        for row in rows:
            self.attempt(conn, row.id, batch_id, "deferred", str(failure))
            conn.execute(update(outbox).where(outbox.c.id == row.id).values(
                attempts=row.attempts, next_attempt_ms=until, last_error=str(failure)))

    def reschedule(self, conn: Connection, row: Any, batch_id: str, detail: str,
                   retry_after: float | None, backoff: int | None = None,
                   most: float | None = None) -> None:
        """Try ``row`` again later: after a backoff over ``backoff`` failures
        (by default its own attempts), never sooner than ``retry_after``, and
        (given ``most``) never later than a jittered ``most`` seconds unless
        ``retry_after`` says so."""
        attempts = row.attempts + 1
        self.attempt(conn, row.id, batch_id, "retry", detail)
        if self.policy.exhausted(attempts):
            self.fail(conn, row, batch_id, ReasonCode.RETRIES_EXHAUSTED,
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

    def fail(self, conn: Connection, row: Any, batch_id: str, reason: ReasonCode,
             message: str, record_attempt: bool = True) -> None:
        """The command will not go: ``failed``, with an exception an operator
        can retry, fix and replay, or dismiss."""
        conn.execute(update(outbox).where(outbox.c.id == row.id)
                     .values(status="failed", attempts=row.attempts + 1, last_error=message))
        if record_attempt:
            self.attempt(conn, row.id, batch_id, "rejected", message)
        open_exception(conn, reason=reason, stage="outbound", message=message,
                       correlation_id=row.correlation_id, at=self.clock.now(),
                       outbox_id=row.id, inbox_id=row.inbox_id, record_kind=row.record_kind,
                       record_id=row.record_id, raw=row.payload)

    def attempt(self, conn: Connection, outbox_id: int, batch_id: str, outcome: str,
                detail: str | None) -> None:
        _ATTEMPT.run(conn, [{"row_id": outbox_id, "detail": detail}], in_batch=batch_id,
                     outcome=outcome)
