"""Waking idle workers when work arrives, on PostgreSQL (LISTEN/NOTIFY).

Whatever makes work for a worker (events stored, released or requeued in the
inbox; commands written to the outbox) announces it in its own transaction,
so the notification goes out when, and only if, the work is committed. An
idle worker listens on its own connection and wakes at once; it still looks
again every ``idle_poll`` seconds for work that no one announces (a backoff
or a lease running out, a dead worker's aggregate). Without a listener (on
SQLite, or while the listening connection is down) a worker polls every
``idle_sleep`` seconds as before.

PostgreSQL folds the same notification sent twice in one transaction into
one, and a listener's connection keeps the notifications that arrive while
its worker is busy, so none is lost between a worker's last look and its
wait; they wake it once."""

from __future__ import annotations

import contextlib
import threading
import time

import psycopg
import structlog
from sqlalchemy import Connection, Engine

log = structlog.get_logger("billbridge.wakeup")

CHANNEL = "billbridge_work"
RECONNECT_SECONDS = 5.0
"""How long a listener whose connection broke polls before it listens again."""
SLICE_SECONDS = 0.25
"""The longest a wait goes without looking at its stop event."""


def announce(conn: Connection) -> None:
    """Say, in ``conn``'s transaction, that there is work (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"NOTIFY {CHANNEL}")


def _received(conn: psycopg.Connection[tuple[object, ...]], timeout: float) -> bool:
    """Whether work was announced within ``timeout`` seconds. Every
    notification that piled up while the worker was busy is news of the same
    work: one wake-up takes them all, those already read and those waiting in
    the socket (psycopg keeps the rest of a batch for the next call)."""
    if not any(True for _ in conn.notifies(timeout=timeout, stop_after=1)):
        return False
    while any(True for _ in conn.notifies(timeout=0)):
        pass
    return True


class Listener:
    """An idle worker's wait: until work is announced, ``idle_poll`` passes,
    or ``stop`` is set; on a store that cannot announce, or for a loop that
    does not work the queues (``listen`` false), ``idle_sleep``."""

    def __init__(self, engine: Engine, *, idle_sleep: float = 0.05,
                 idle_poll: float = 1.0, listen: bool = True) -> None:
        self.idle_sleep = idle_sleep
        self.idle_poll = idle_poll
        self._url = (engine.url.set(drivername="postgresql")
                     .render_as_string(hide_password=False)
                     if listen and engine.dialect.name == "postgresql" else None)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._retry_at = 0.0
        self.wakeups = 0  # announcements that ended a wait (for tests and logs)

    @property
    def listening(self) -> bool:
        return self._conn is not None

    def wait(self, stop: threading.Event) -> bool:
        """Wait while there is nothing to do; True when work was announced."""
        conn = self._connection()
        if conn is None:
            stop.wait(self.idle_sleep)
            return False
        deadline = time.monotonic() + self.idle_poll
        try:
            while not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if _received(conn, min(left, SLICE_SECONDS)):
                    self.wakeups += 1
                    return True
        except psycopg.Error as exc:
            log.warning("wake-up listener lost its connection; polling until it is back",
                        error=repr(exc))
            self.close()
            self._retry_at = time.monotonic() + RECONNECT_SECONDS
        return False

    def catch_up(self) -> None:
        """Return once every announcement committed before the call has reached
        this listener: PostgreSQL sends a listening session the notifications
        queued for it before it answers that session's next query."""
        conn = self._connection()
        if conn is not None:
            try:
                conn.execute("SELECT 1")
            except psycopg.Error as exc:
                log.warning("wake-up listener lost its connection; polling until it is back",
                            error=repr(exc))
                self.close()
                self._retry_at = time.monotonic() + RECONNECT_SECONDS

    def _connection(self) -> psycopg.Connection[tuple[object, ...]] | None:
        if self._conn is not None or self._url is None or time.monotonic() < self._retry_at:
            return self._conn
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            log.warning("wake-up listener cannot connect; polling meanwhile", error=repr(exc))
            self._retry_at = time.monotonic() + RECONNECT_SECONDS
            return None
        self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
