"""Opening the hub's store for a command: the engine for a URL (or
BILLBRIDGE_DATABASE_URL, or ./billbridge.db), migrated to the current schema,
and owner-only files for keys."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from billbridge.store import db, files


def open_store(url: str | None, *, intake: bool = False) -> Engine:
    """The store at ``url``, migrated. ``intake``: a process that acknowledges
    webhooks after their commit, so SQLite checkpoints its log in small steps."""
    pages = db.INTAKE_CHECKPOINT_PAGES if intake else db.BATCH_CHECKPOINT_PAGES
    engine = db.make_engine(db.database_url(url), checkpoint_pages=pages)
    db.migrate(engine)
    return engine


def write_private(path: Path, content: bytes) -> None:
    """Write ``content`` to a file only its owner may read (mode 600)."""
    files.write_private(path, content)
