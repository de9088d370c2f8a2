"""Incremental polling into the inbox. Each page's events and the cursor
after it commit together, so a poll cut off mid-way resumes from its last
stored page and re-reads nothing it already has (the inbox drops repeats)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from billbridge.connectors.base import Source
from billbridge.engine import config_store, drift
from billbridge.engine.clock import Clock
from billbridge.engine.inbox import IngestStatus, prepare, store
from billbridge.store.db import dialect_insert
from billbridge.store.tables import cursors


@dataclass
class SyncResult:
    pages: int = 0
    accepted: int = 0
    duplicates: int = 0
    malformed: int = 0
    drift: int = 0  # findings of vendor drift (engine.drift)
    cursor: str | None = None


def load_cursor(conn: Connection, source: str, stream: str) -> str | None:
    row = conn.execute(select(cursors.c.value).where(cursors.c.source == source,
                                                     cursors.c.stream == stream)).first()
    return None if row is None else str(row.value)


def save_cursor(conn: Connection, source: str, stream: str, value: str, clock: Clock) -> None:
    stmt = dialect_insert(conn)(cursors).values(source=source, stream=stream, value=value,
                                               updated_at=clock.now())
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[cursors.c.source, cursors.c.stream],
        set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at}))


def configured(conn: Connection, source: Source) -> drift.DriftLog | None:
    """Hand a source that reads governed settings (a ``configure(configuration)``
    method) the active configuration, and watch its contract (engine.drift).
    The configuration is parsed once per version and store (``config_store.configs``);
    a newly approved version reaches the source on its next poll."""
    configure = getattr(source, "configure", None)
    version = config_store.active_version(conn) if configure is not None else 0
    if configure is not None and version:
        configure(config_store.configs(conn.engine).get(conn, version))
    return drift.watch(conn, source)


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def source_lock(name: str) -> threading.Lock:
    """Held while this process reads source ``name``: a poll, and an upload
    read at once (services.uploads), never overlap, so each knows what it
    stored and neither counts the other's rows as repeats."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(name, threading.Lock())


def sync(engine: Engine, source: Source, clock: Clock, *, stream: str = "default") -> SyncResult:
    """One poll of ``source``, configured and watched first (``configured``)."""
    with source_lock(source.name):
        return _sync(engine, source, clock, stream)


def _sync(engine: Engine, source: Source, clock: Clock, stream: str) -> SyncResult:
    with engine.connect() as conn:
        cursor = load_cursor(conn, source.name, stream)
        drifts = configured(conn, source)
    result = SyncResult(cursor=cursor)
    for page in source.poll(cursor):
        prepared = prepare(page.events, source=source.name)
        with engine.begin() as conn:
            if drifts is not None:
                result.drift += drift.keep(conn, drifts.connection, drifts.api_version,
                                           drifts.take(), clock.now())
            for item in store(conn, prepared, clock=clock):
                if item.status is IngestStatus.ACCEPTED:
                    result.accepted += 1
                elif item.status is IngestStatus.DUPLICATE:
                    result.duplicates += 1
                else:
                    result.malformed += 1
            if page.cursor is not None:
                save_cursor(conn, source.name, stream, page.cursor, clock)
                result.cursor = page.cursor
        result.pages += 1
    return result
