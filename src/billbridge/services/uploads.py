"""Timesheet and expense files uploaded (through the API or the console) to a
file source: saved into its watched folder atomically (a temporary name, then
a rename) and read at once, so the uploader sees what became of every row:
imported, already in the hub, or refused into the exception queue with its
line. A file whose bytes are already in the folder is not saved twice (and
adds nothing); a different file under a taken name is saved beside it. The
upload is read under the source's lock and marked read in its cursor, so the
source's own poll never reads it a second time."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, select

from billbridge.connectors.base import Source
from billbridge.engine.clock import Clock
from billbridge.engine.inbox import IngestStatus, prepare, store
from billbridge.engine.sync import configured, load_cursor, save_cursor, source_lock
from billbridge.engine.tokens import Identity, OutOfScope
from billbridge.errors import Forbidden, Invalid, NotFound
from billbridge.store.tables import exceptions

SUFFIXES = (".csv", ".xlsx")
FILE_EVENTS = ("time_entry.upserted", "expense.upserted")
"""What a file source's rows become: an uploading token must be allowed both."""
MAX_NAME = 120
STREAM = "default"  # the cursor stream a file source's poll keeps


class FileIntake(Source, Protocol):
    """A source that takes files (connectors.timesheet_files' FileSource)."""

    @property
    def drop_folder(self) -> Path: ...

    def read_file(self, name: str, cursor: str | None) -> tuple[list[tuple[int, Any]], str]:
        """(line, event or Malformed) per row of the folder's file ``name``, and
        ``cursor`` with that file marked read."""
        ...


@dataclass(frozen=True, slots=True)
class Saved:
    name: str  # the name it has in the folder
    size: int
    digest: str  # sha256 of its bytes
    already: bool  # the same bytes were in the folder: nothing was written


@dataclass(frozen=True, slots=True)
class Refused:
    """A row that is no event: in the exception queue with its line."""

    line: int
    message: str
    exception_id: int | None  # its exception (None: dismissed and gone from the queue)
    new: bool  # this upload opened the exception; False: the same row was refused before


@dataclass(frozen=True, slots=True)
class Imported:
    source: str
    saved: Saved
    rows: int = 0
    imported: int = 0  # events new to the hub
    repeated: int = 0  # events the hub had already (the same rows, from any file)
    refused: list[Refused] = field(default_factory=list)

    @property
    def added_nothing(self) -> bool:
        return self.imported == 0 and not any(r.new for r in self.refused)


def intake(intakes: Mapping[str, FileIntake], who: Identity, source: str) -> FileIntake:
    """The file source ``source`` if ``who`` may submit its time entries and
    expenses: NotFound or Forbidden saying what to use instead."""
    try:
        who.check_event_types(source, FILE_EVENTS)
    except OutOfScope as exc:
        raise Forbidden(str(exc), code="OUT_OF_SCOPE") from None
    found = intakes.get(source)
    if found is None:
        known = ", ".join(sorted(intakes)) or "none on this hub"
        raise NotFound(f"{source} is not a file source (file sources: {known})")
    return found


def may_upload(who: Identity, source: str) -> str | None:
    """Why ``who`` may not upload to ``source``, or None when it may."""
    try:
        who.check_event_types(source, FILE_EVENTS)
    except OutOfScope as exc:
        return str(exc)
    return None


def import_file(engine: Engine, clock: Clock, into: FileIntake, name: str,
                data: bytes) -> Imported:
    """Save ``data`` as ``name`` in ``into``'s folder and read it now, under
    the active configuration's column map (``intake`` checks the caller first)."""
    with source_lock(into.name):
        saved = save(into.drop_folder, name, data)
        with engine.connect() as conn:
            configured(conn, into)
            cursor = load_cursor(conn, into.name, STREAM)
        try:
            rows, after = into.read_file(saved.name, cursor)
        except Exception as exc:  # whatever a broken workbook makes its reader raise
            if not saved.already:  # nor left for the poll to stumble on
                (into.drop_folder / saved.name).unlink(missing_ok=True)
            raise Invalid(f"{saved.name} cannot be read as a timesheet "
                          f"({type(exc).__name__}: {exc}); export it again") from None
        prepared = prepare([event for _, event in rows], source=into.name)
        with engine.begin() as conn:
            results = store(conn, prepared, clock=clock)
            save_cursor(conn, into.name, STREAM, after, clock)
            bad = [r.inbox_id for r, why in zip(results, prepared.refusals(), strict=True)
                   if why is not None and r.inbox_id is not None]
            opened = {row.inbox_id: row.id for row in conn.execute(
                select(exceptions.c.inbox_id, exceptions.c.id).where(
                    exceptions.c.inbox_id.in_(bad), exceptions.c.status == "open"))}
    imported = repeated = 0
    refused: list[Refused] = []
    for (line, _), result, why in zip(rows, results, prepared.refusals(), strict=True):
        if why is not None:
            refused.append(Refused(line, why, opened.get(result.inbox_id),
                                   new=result.status is IngestStatus.MALFORMED))
        elif result.status is IngestStatus.ACCEPTED:
            imported += 1
        else:
            repeated += 1
    return Imported(into.name, saved, len(rows), imported, repeated, refused)


def save(folder: Path, name: str, data: bytes) -> Saved:
    """Check ``name`` and ``data`` and put them in ``folder``; Invalid saying
    what to fix when they cannot be a timesheet file."""
    _check_name(name)
    _check_content(name, data)
    digest = hashlib.sha256(data).hexdigest()
    for existing in sorted(folder.iterdir()):  # only a file of the same size is read
        if existing.is_file() and existing.suffix.lower() in SUFFIXES and \
                existing.stat().st_size == len(data) and \
                hashlib.sha256(existing.read_bytes()).hexdigest() == digest:
            return Saved(existing.name, len(data), digest, already=True)
    target = folder / name
    if target.exists():
        target = folder / f"{target.stem}-{digest[:8]}{target.suffix}"
    temporary = folder / f".{target.name}.part"
    temporary.write_bytes(data)
    temporary.replace(target)
    return Saved(target.name, len(data), digest, already=False)


def _check_name(name: str) -> None:
    if not name or Path(name).name != name or name.startswith(".") or len(name) > MAX_NAME \
            or not name.isprintable():
        raise Invalid(f"file name {name!r} must be a plain name (no folders, not hidden, at "
                      f"most {MAX_NAME} characters), e.g. timesheets-2026-03.csv")
    if Path(name).suffix.lower() not in SUFFIXES:
        raise Invalid(f"file name {name!r} must end in .csv or .xlsx")


def _check_content(name: str, data: bytes) -> None:
    if not data.strip():
        raise Invalid(f"{name} is empty: export the timesheet again")
    if name.lower().endswith(".xlsx"):
        if not data.startswith(b"PK\x03\x04"):
            raise Invalid(f"{name} is not an XLSX workbook: save it as .xlsx, or as UTF-8 CSV")
        return
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(f"{name} is not UTF-8 text: export the sheet as CSV UTF-8") from None
