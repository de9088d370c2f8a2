"""Database engines for the embedded SQLite store and PostgreSQL, and the
migrations that every command runs on start-up."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from billbridge.store.files import create_private

DEFAULT_URL = "sqlite:///billbridge.db"
MIGRATIONS = Path(__file__).with_name("migrations")


def database_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get("BILLBRIDGE_DATABASE_URL") or DEFAULT_URL


def _normalise(url: str) -> str:
    # psycopg 3 is the driver we ship; accept the plain postgresql:// spelling.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


BATCH_CHECKPOINT_PAGES = 8192
"""SQLite: WAL pages between checkpoints for processes that write in batches."""
INTAKE_CHECKPOINT_PAGES = 1000
"""SQLite's own default, for a process that acknowledges webhooks."""


def make_engine(url: str | None = None, *,
                checkpoint_pages: int = BATCH_CHECKPOINT_PAGES, **kwargs: Any) -> Engine:
    """An engine for ``url``: SQLite in WAL mode with IMMEDIATE transactions,
    or PostgreSQL through psycopg.

    SQLite runs a checkpoint inside the commit that takes the WAL past
    ``checkpoint_pages``; that commit pays for copying the pages back and an
    fsync. A worker's batch commits often: every 8,192 pages (32 MiB) keeps a
    checkpoint from following nearly every batch. An intake acknowledges each
    webhook after its commit, so a 32 MiB checkpoint is a latency spike there:
    ``INTAKE_CHECKPOINT_PAGES`` keeps them small (docs/benchmarks.md, fourth pass)."""
    url = _normalise(database_url(url))
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        # psycopg prepares a statement run five times, and PostgreSQL may then
        # keep one plan for it, made while the tables were small: at month-end
        # the outbox and the delivery attempts grow a thousandfold in minutes
        # and a plan that scanned twenty rows scans a million. Plan each run.
        kwargs.setdefault("connect_args", {"options": "-c plan_cache_mode=force_custom_plan"})
        return create_engine(url, **kwargs)

    in_memory = parsed.database in (None, "", ":memory:")
    if in_memory:
        kwargs.setdefault("poolclass", StaticPool)
    elif parsed.database and Path(parsed.database).parent.is_dir():
        # SQLite gives its -wal and -shm files the database file's mode.
        create_private(Path(parsed.database))
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 60}, **kwargs
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        # A month-end batch touches pages all over the inbox, outbox and record
        # indexes: a 64 MiB cache (the default is 2 MiB) keeps them in memory.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: a deferred transaction that later
        # writes can fail with SQLITE_BUSY instead of waiting its turn. A
        # connection marked READ_ONLY only reads: a snapshot, and no lock.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


READ_ONLY = "billbridge_read_only"
"""Execution option: this connection's transactions only read (SQLite then
begins them deferred, as snapshots that take no write lock)."""


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


# Alembic's `context` is one module-level object: two migrations running at
# once in one process (two previews, each on its own scratch store) would
# configure it over each other. Taken before the store's own lock, never after.
_MIGRATING = threading.Lock()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (safe to run on every start,
    and from several threads at once)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # no chatter on every command
    with _MIGRATING, engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        if is_postgres(engine):
            # Several workers may start together: one migrates, the rest wait.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(724100)")
        command.upgrade(cfg, "head")



@contextmanager
def scratch_database(server_url: str, prefix: str = "bb_scratch",
                     template: str | None = None) -> Iterator[str]:
    """A fresh database on a PostgreSQL server (tests, the soak), dropped afterwards
    even if connections to it are still open. With ``template`` (a database's
    name on the same server, which nobody may be connected to) it starts as a
    copy of that one."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_normalise(server_url), isolation_level="AUTOCOMMIT")
    copy_of = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"{copy_of}')
    base, _, _ = server_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def dialect_insert(conn: Connection) -> Any:
    """The INSERT construct with ON CONFLICT support for this connection."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
