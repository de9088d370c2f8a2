"""Announcing work, and listening for it, on PostgreSQL (NOTIFY/LISTEN): the
store's interface to its notifications, so that nothing above the store
speaks to the database driver. On SQLite there is nothing to announce and no
channel to open.

An announcement is sent in the transaction that made the work, so it goes
out when, and only if, the work is committed. PostgreSQL folds the same
notification sent twice in one transaction into one, and a listening
connection keeps the notifications that arrive while its reader is busy, so
none is lost between a worker's last look and its wait."""

from __future__ import annotations

import contextlib

import psycopg
from sqlalchemy import Connection, Engine

CHANNEL = "billbridge_work"


def announce(conn: Connection) -> None:
    """Say, in ``conn``'s transaction, that there is work (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"NOTIFY {CHANNEL}")


class ChannelLost(Exception):
    """The listening connection cannot be opened or has broken; the error says why."""


class Channel:
    """A connection of its own that listens for announced work. ``available``
    is false on a store that cannot announce (SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self._url = (engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
                     if engine.dialect.name == "postgresql" else None)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    @property
    def available(self) -> bool:
        return self._url is not None

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def open(self) -> None:
        """Connect and listen; ``ChannelLost`` when the store cannot be reached."""
        if self._conn is not None or self._url is None:
            return
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            raise ChannelLost(repr(exc)) from exc
        self._conn = conn

    def received(self, timeout: float) -> bool:
        """Whether work was announced within ``timeout`` seconds. Every
        notification that piled up while the reader was busy is news of the
        same work: one wake-up takes them all, those already read and those
        waiting in the socket (psycopg keeps the rest of a batch for the next
        call). ``ChannelLost`` (and the channel closed) when it broke."""
        conn = self._conn
        if conn is None:
            return False
        try:
            if not any(True for _ in conn.notifies(timeout=timeout, stop_after=1)):
                return False
            while any(True for _ in conn.notifies(timeout=0)):
                pass
        except psycopg.Error as exc:
            self.close()
            raise ChannelLost(repr(exc)) from exc
        return True

    def catch_up(self) -> None:
        """Return once every announcement committed before the call has reached
        this channel: PostgreSQL sends a listening session the notifications
        queued for it before it answers that session's next query."""
        if self._conn is None:
            return
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error as exc:
            self.close()
            raise ChannelLost(repr(exc)) from exc

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
