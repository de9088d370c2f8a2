"""Opening the hub's store for a command: the engine for a URL (or
BILLBRIDGE_DATABASE_URL, or ./billbridge.db), migrated to the current schema,
and owner-only files for keys."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from billbridge.errors import Invalid, Unavailable
from billbridge.store import db, files

WHERE = "--database-url or BILLBRIDGE_DATABASE_URL"


def open_store(url: str | None, *, intake: bool = False) -> Engine:
    """The store at ``url``, migrated. ``intake``: a process that acknowledges
    webhooks after their commit, so SQLite checkpoints its log in small steps.
    A URL that names no database is Invalid; a store that cannot be opened
    (its folder or database missing, its server down) is Unavailable, both
    saying what to check."""
    pages = db.INTAKE_CHECKPOINT_PAGES if intake else db.BATCH_CHECKPOINT_PAGES
    given = db.database_url(url)
    try:
        engine = db.make_engine(given, checkpoint_pages=pages)
        db.migrate(engine)
    except ArgumentError as exc:  # unparseable, or a dialect SQLAlchemy does not know
        raise Invalid(f"{given!r} is not a database URL ({exc}): give {WHERE} as "
                      "sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE") from None
    except OperationalError as exc:
        raise Unavailable(f"cannot open the store {_shown(given)}: {_why(exc)}; check "
                          f"{WHERE}") from None
    return engine


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _why(exc: OperationalError) -> str:
    said = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    said = said.split("FATAL:", 1)[-1].strip()  # PostgreSQL's reason, without the preamble
    if said == "unable to open database file":
        return "its folder does not exist or cannot be written (SQLite makes the file, not "\
               "the folder)"
    return said


def write_private(path: Path, content: bytes) -> None:
    """Write ``content`` to a file only its owner may read (mode 600)."""
    files.write_private(path, content)
