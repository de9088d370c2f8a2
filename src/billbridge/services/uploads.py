"""Timesheet and expense files uploaded through the API: saved into the watched
folder of their file source, atomically (a temporary name, then a rename), for
its next poll to read. A file whose bytes are already in the folder is not
saved twice; a different file under a taken name is saved beside it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from billbridge.errors import Invalid

SUFFIXES = (".csv", ".xlsx")
FILE_EVENTS = ("time_entry.upserted", "expense.upserted")
"""What a file source's rows become: an uploading token must be allowed both."""
MAX_NAME = 120


@dataclass(frozen=True, slots=True)
class Saved:
    name: str  # the name it has in the folder
    size: int
    digest: str  # sha256 of its bytes
    already: bool  # the same bytes were in the folder: nothing was written


def save(folder: Path, name: str, data: bytes) -> Saved:
    """Check ``name`` and ``data`` and put them in ``folder``; Invalid saying
    what to fix when they cannot be a timesheet file."""
    _check_name(name)
    _check_content(name, data)
    digest = hashlib.sha256(data).hexdigest()
    for existing in sorted(folder.iterdir()):
        if existing.is_file() and existing.suffix.lower() in SUFFIXES and \
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
