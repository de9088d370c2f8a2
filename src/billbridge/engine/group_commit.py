"""Group commit into the inbox: deliveries that arrive together share one
transaction.

A webhook is acknowledged only once its events are committed to the inbox.
One transaction per delivery spends most of its time on the transaction, not
the event; here one thread commits, and every delivery that arrived while it
was committing goes into its next transaction. Under light load a group is
one delivery; under heavy load the cost per delivery falls as the load rises.
The thread also keeps a store that is busy (SQLite's write lock held by a
worker) from stalling the server's event loop: requests keep being read and
queue for the next group.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from billbridge.connectors.contracts import Drift
from billbridge.engine import drift
from billbridge.engine.clock import Clock
from billbridge.engine.inbox import IngestResult, ingest_many
from billbridge.errors import Unavailable

log = structlog.get_logger("billbridge.group_commit")


Outcome = list[IngestResult] | BaseException


@dataclass(frozen=True, slots=True)
class SeenDrift:
    """What a delivery's records showed against their contract (engine.drift)."""

    connection: str
    api_version: str
    drifts: list[Drift]


@dataclass(slots=True)
class _Delivery:
    source: str
    raws: list[Any]
    done: Future[list[IngestResult]] | None = None  # a thread waits on it
    waiter: asyncio.Future[list[IngestResult]] | None = None  # a coroutine awaits it
    drift: SeenDrift | None = None  # kept in the delivery's transaction


class GroupCommitter:
    """Stores deliveries in the inbox, many per transaction, on its own thread."""

    def __init__(self, engine: Engine, clock: Clock, *, max_group: int = 500) -> None:
        self.engine = engine
        self.clock = clock
        self.max_group = max_group
        self._queue: queue.SimpleQueue[_Delivery | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    async def store(self, raws: Iterable[Any], *, source: str,
                    drift: SeenDrift | None = None) -> list[IngestResult]:
        """Store one delivery (and the vendor drift its records showed); return
        its results once committed, or raise the error that kept it from the
        store (then nothing of it was stored)."""
        waiter: asyncio.Future[list[IngestResult]] = asyncio.get_running_loop().create_future()
        self._enqueue(_Delivery(source, list(raws), waiter=waiter, drift=drift))
        try:
            return await waiter
        except SQLAlchemyError as exc:
            # The transaction rolled back whole: the sender must deliver again.
            raise Unavailable("the inbox could not store this delivery and kept none of it; "
                              f"send it again ({exc.__class__.__name__})",
                              code="STORE_UNAVAILABLE") from None

    def submit(self, raws: Iterable[Any], *, source: str) -> Future[list[IngestResult]]:
        """``store`` for callers on a thread: a future to wait on."""
        delivery = _Delivery(source, list(raws), done=Future())
        self._enqueue(delivery)
        assert delivery.done is not None
        return delivery.done

    def _enqueue(self, delivery: _Delivery) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="billbridge-group-commit")
                self._thread.start()
        self._queue.put(delivery)

    def stop(self) -> None:
        """Commit what is queued, then end the thread."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group, stopping = [first], False
            while len(group) < self.max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(more)
            _settle(self._commit(group))
            if stopping:
                return

    def _commit(self, group: list[_Delivery]) -> list[tuple[_Delivery, Outcome]]:
        try:
            with self.engine.begin() as conn:
                results = self._store(conn, group)
        except Exception as exc:
            if len(group) == 1:
                log.warning("delivery not stored", source=group[0].source, error=repr(exc))
                return [(group[0], exc)]
            # One delivery must not cost the others their place: each on its own.
            return [outcome for delivery in group for outcome in self._commit([delivery])]
        return list(zip(group, results, strict=True))

    def _store(self, conn: Any, group: list[_Delivery]) -> list[list[IngestResult]]:
        """One ``ingest_many`` per source over the group's events, its results
        handed back to each delivery in order."""
        by_source: dict[str, list[_Delivery]] = {}
        for delivery in group:
            by_source.setdefault(delivery.source, []).append(delivery)
        stored: dict[int, list[IngestResult]] = {}
        for delivery in group:
            if delivery.drift is not None and delivery.drift.drifts:
                seen = delivery.drift
                drift.keep(conn, seen.connection, seen.api_version, seen.drifts,
                           self.clock.now())
        for source, deliveries in by_source.items():
            results = ingest_many(conn, [raw for d in deliveries for raw in d.raws],
                                  source=source, clock=self.clock)
            start = 0
            for delivery in deliveries:
                stored[id(delivery)] = results[start:start + len(delivery.raws)]
                start += len(delivery.raws)
        return [stored[id(d)] for d in group]


def _settle(outcomes: list[tuple[_Delivery, Outcome]]) -> None:
    """Hand each delivery its outcome: waiting threads directly, coroutines with
    one wake-up of their event loop per group (a wake-up per delivery would
    have the loop and this thread take turns at the interpreter lock)."""
    by_loop: dict[asyncio.AbstractEventLoop,
                  list[tuple[asyncio.Future[list[IngestResult]], Outcome]]] = {}
    for delivery, outcome in outcomes:
        if delivery.waiter is not None:
            by_loop.setdefault(delivery.waiter.get_loop(), []).append((delivery.waiter, outcome))
        elif delivery.done is not None:
            if isinstance(outcome, BaseException):
                delivery.done.set_exception(outcome)
            else:
                delivery.done.set_result(outcome)
    for loop, waiters in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(_wake, waiters)


def _wake(waiters: list[tuple[asyncio.Future[list[IngestResult]], Outcome]]) -> None:
    for waiter, outcome in waiters:
        if waiter.done():  # the request was cancelled (its client went away)
            continue
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
