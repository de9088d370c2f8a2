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

import queue
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine

from billbridge.engine.clock import Clock
from billbridge.engine.inbox import IngestResult, ingest_many

log = structlog.get_logger("billbridge.group_commit")


@dataclass(slots=True)
class _Delivery:
    source: str
    raws: list[Any]
    done: Future[list[IngestResult]] = field(default_factory=Future)


class GroupCommitter:
    """Stores deliveries in the inbox, many per transaction, on its own thread."""

    def __init__(self, engine: Engine, clock: Clock, *, max_group: int = 500) -> None:
        self.engine = engine
        self.clock = clock
        self.max_group = max_group
        self._queue: queue.SimpleQueue[_Delivery | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, raws: Iterable[Any], *, source: str) -> Future[list[IngestResult]]:
        """Queue one delivery; the future holds its results once committed, or
        the error that kept it from the store (then nothing of it was stored)."""
        delivery = _Delivery(source, list(raws))
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="billbridge-group-commit")
                self._thread.start()
        self._queue.put(delivery)
        return delivery.done

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
            self._commit(group)
            if stopping:
                return

    def _commit(self, group: list[_Delivery]) -> None:
        try:
            with self.engine.begin() as conn:
                results = self._store(conn, group)
        except Exception as exc:
            if len(group) == 1:
                log.warning("delivery not stored", source=group[0].source, error=repr(exc))
                group[0].done.set_exception(exc)
                return
            # One delivery must not cost the others their place: each on its own.
            for delivery in group:
                self._commit([delivery])
            return
        for delivery, stored in zip(group, results, strict=True):
            delivery.done.set_result(stored)

    def _store(self, conn: Any, group: list[_Delivery]) -> list[list[IngestResult]]:
        """One ``ingest_many`` per source over the group's events, its results
        handed back to each delivery in order."""
        by_source: dict[str, list[_Delivery]] = {}
        for delivery in group:
            by_source.setdefault(delivery.source, []).append(delivery)
        stored: dict[int, list[IngestResult]] = {}
        for source, deliveries in by_source.items():
            results = ingest_many(conn, [raw for d in deliveries for raw in d.raws],
                                  source=source, clock=self.clock)
            start = 0
            for delivery in deliveries:
                stored[id(delivery)] = results[start:start + len(delivery.raws)]
                start += len(delivery.raws)
        return [stored[id(d)] for d in group]
