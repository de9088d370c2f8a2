"""Opening the hub's store for a command: the engine for a URL (or
BILLBRIDGE_DATABASE_URL, or ./billbridge.db), migrated to the current schema,
and owner-only files for keys. Only the commands that set a hub up (migrate,
serve, worker, the first token) create a store; the others refuse to invent an
empty one, saying which they looked for."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, inspect, make_url, select
from sqlalchemy.exc import ArgumentError, OperationalError

from billbridge.errors import Invalid, NotFound, Unavailable
from billbridge.store import db, files

WHERE = "--database-url or BILLBRIDGE_DATABASE_URL"
DEMO_STORE = "sqlite:///var/demo/hub.db"


def open_store(url: str | None, *, intake: bool = False, create: bool = False) -> Engine:
    """The store at ``url``, migrated. ``intake``: a process that acknowledges
    webhooks after their commit, so SQLite checkpoints its log in small steps.
    A URL that names no database is Invalid; a store that cannot be opened
    (its folder or database missing, its server down) is Unavailable, both
    saying what to check."""
    pages = db.INTAKE_CHECKPOINT_PAGES if intake else db.BATCH_CHECKPOINT_PAGES
    given = db.database_url(url)
    try:
        if not create:
            _refuse_missing(given)
        engine = db.make_engine(given, checkpoint_pages=pages)
        if not create and not _has_schema(engine):
            engine.dispose()
            raise NotFound(_missing(given, "the database holds no billbridge store"))
        db.migrate(engine)
    except ArgumentError as exc:  # unparseable, or a dialect SQLAlchemy does not know
        raise Invalid(f"{given!r} is not a database URL ({exc}): give {WHERE} as "
                      "sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE") from None
    except OperationalError as exc:
        raise Unavailable(f"cannot open the store {_shown(given)}: {_why(exc)}; check "
                          f"{WHERE}") from None
    return engine


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or one in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _refuse_missing(url: str) -> None:
    # Checked before connecting: opening a SQLite file that is not there makes it.
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        raise NotFound(_missing(url, f"{path} does not exist here ({Path.cwd()})"))


def _has_schema(engine: Engine) -> bool:
    with engine.connect() as conn:
        return inspect(conn).has_table("alembic_version")


def _missing(url: str, why: str) -> str:
    return (f"no store at {_shown(url)}: {why}; create one with `billbridge migrate "
            f"--database-url {_shown(url)}`, or give {WHERE} of yours (the demo's is "
            f"{DEMO_STORE})")


@dataclass(frozen=True)
class StoreStatus:
    url: str  # password hidden
    chosen_by: str  # --database-url, BILLBRIDGE_DATABASE_URL or the default
    exists: bool
    schema: str | None  # the migration it is at
    counts: dict[str, int]


def status(url: str | None) -> StoreStatus:
    """Which store a command would use, why that one, and what it holds."""
    from billbridge.store.tables import config_versions, exceptions, inbox, records

    from_env = os.environ.get("BILLBRIDGE_DATABASE_URL")
    # The CLI fills the option from the variable: the same text came from there.
    chosen_by = ("BILLBRIDGE_DATABASE_URL" if from_env and url in (None, from_env)
                 else "--database-url" if url else "the default")
    given = db.database_url(url)
    try:
        _refuse_missing(given)
        engine = db.make_engine(given)
    except NotFound:
        return StoreStatus(_shown(given), chosen_by, False, None, {})
    except ArgumentError as exc:
        raise Invalid(f"{given!r} is not a database URL ({exc})") from None
    try:
        if not _has_schema(engine):
            return StoreStatus(_shown(given), chosen_by, False, None, {})
        from sqlalchemy import func

        with engine.connect() as conn:
            revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            count = {name: int(conn.execute(select(func.count()).select_from(table)
                                            .where(*where)).scalar() or 0)
                     for name, table, where in (
                         ("events in the inbox", inbox, ()),
                         ("open exceptions", exceptions, (exceptions.c.status == "open",)),
                         ("records", records, ()),
                         ("configuration versions", config_versions, ()))}
        return StoreStatus(_shown(given), chosen_by, True, str(revision), count)
    except OperationalError as exc:
        raise Unavailable(f"cannot open the store {_shown(given)}: {_why(exc)}") from None
    finally:
        engine.dispose()


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
