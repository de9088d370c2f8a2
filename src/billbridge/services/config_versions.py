"""Governed configuration: versions, their documents, propose, preview,
approve or reject (maker-checker), roll back. A version that does not exist is
NotFound; an approval that does not apply is a Conflict (APPROVAL_REFUSED); an
invalid document raises the domain's ConfigError naming every problem."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine

from billbridge.domain.idempotency import canonical_json
from billbridge.domain.times import as_utc
from billbridge.engine import config_store
from billbridge.engine.hub import Hub
from billbridge.errors import Conflict, NotFound
from billbridge.services._rows import plain


def active_version(conn: Connection) -> int:
    """The active version, 0 when none is."""
    return config_store.active_version(conn)


def versions(conn: Connection) -> list[dict[str, Any]]:
    """Every version, newest first, with who proposed and approved it."""
    return config_store.versions(conn)


def versions_page(conn: Connection, *, cursor: int | None, limit: int) -> list[dict[str, Any]]:
    """Newest first, the versions below ``cursor``; each also as ``id``."""
    rows = [r for r in config_store.versions(conn)
            if cursor is None or r["version"] < cursor][:limit]
    return [{**r, "id": r["version"]} for r in plain(rows)]


def document(conn: Connection, version: int) -> dict[str, Any]:
    return config_store.document(conn, version)


def show(conn: Connection, version: int | None = None) -> dict[str, Any]:
    """One version (the active one when ``version`` is None) with its status,
    who proposed and approved it and when (ISO 8601, UTC), its note, and its
    ``document``.
    NotFound when there is no such version, or none is active."""
    if version is None:
        version = config_store.active_version(conn)
        if not version:
            raise NotFound("no configuration is active yet: activate one with `billbridge "
                           "serve --config FOLDER`, or name a proposed version")
    row = next((r for r in config_store.versions(conn) if r["version"] == version), None)
    if row is None:
        raise NotFound(f"there is no configuration version {version}; "
                       "`billbridge config versions` lists them")
    times = {k: _iso(row[k]) for k in ("created_at", "activated_at")}
    [shown] = plain([{**row, **times}])
    shown.pop("digest", None)
    return {**shown, "document": config_store.document(conn, version)}


def _iso(at: datetime | None) -> str | None:
    """ISO 8601 in UTC."""
    return None if at is None else as_utc(at).isoformat()


def history(conn: Connection) -> list[dict[str, Any]]:
    """Every version, newest first, with the sections it changed against the
    version before it (``changed``)."""
    rows = config_store.versions(conn)
    documents = {v["version"]: config_store.document(conn, v["version"]) for v in rows}
    for v in rows:
        before = documents.get(v["version"] - 1, {})
        after = documents[v["version"]]
        v["changed"] = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return rows


@dataclass(frozen=True)
class Pending:
    """A proposal as its approver must see it before approving: what it changes
    in the document, and which postings its scenario preview changes."""

    version: int
    proposed_by: str
    note: str | None
    created_at: str | None
    diff: list[str]  # unified diff of the YAML, active → proposed
    preview: Preview | None  # None without a scenario suite
    preview_error: str | None = None  # why the suite could not run
    measured: str | None = None  # what the preview was measured on (``Seen``)


@dataclass(frozen=True)
class Seen:
    """The preview an approver read: what it was measured on (``Pending.measured``)
    and the scenario files it ran."""

    measured: str
    scenarios: Sequence[Path]


def pending(engine: Engine) -> tuple[dict[str, Any] | None, list[Pending]]:
    """The active version (without its document) and every open proposal with
    its diff against it (no preview: that runs the scenario suite, see review)."""
    import difflib

    import yaml

    with engine.connect() as conn:
        active = show(conn) if config_store.active_version(conn) else None
        rows = [r for r in config_store.versions(conn) if r["status"] == "proposed"]
        documents = {r["version"]: config_store.document(conn, r["version"]) for r in rows}
    before = yaml.safe_dump(active["document"] if active else {}, sort_keys=True).splitlines()
    found = []
    for row in sorted(rows, key=lambda r: r["version"]):
        after = yaml.safe_dump(documents[row["version"]], sort_keys=True).splitlines()
        lines = list(difflib.unified_diff(
            before, after, f"v{active['version']} (active)" if active else "nothing active",
            f"v{row['version']} (proposed)", lineterm="", n=2))
        found.append(Pending(row["version"], row["proposed_by"], row["note"],
                             _iso(row["created_at"]), lines, None))
    if active is not None:
        active = {k: v for k, v in active.items() if k != "document"}
    return active, found


def review(engine: Engine, version: int, scenarios: Sequence[Path]) -> Pending:
    """One open proposal as its approver sees it: its diff and its preview over
    ``scenarios`` (a suite that cannot run is said in ``preview_error``).
    NotFound when ``version`` is not an open proposal."""
    from billbridge.domain.config import ConfigError
    from billbridge.scenarios.runner import ScenarioError

    found = next((p for p in pending(engine)[1] if p.version == version), None)
    if found is None:
        raise NotFound(f"version {version} is not a proposal waiting for approval")
    measured, shown, error = None, None, None
    try:
        if scenarios:
            measured, shown = _kept(engine, version, scenarios)
    except (ScenarioError, ConfigError) as exc:
        error = str(exc)
    if measured is None:
        with engine.connect() as conn:
            measured = _measured(*_compared(conn, version), scenarios)
    return replace(found, preview=shown, preview_error=error, measured=measured)


def propose(engine: Engine, document: dict[str, Any], *, actor: str, at: datetime,
            note: str | None = None) -> int:
    with engine.begin() as conn:
        return config_store.propose(conn, document, actor=actor, at=at, note=note)


@dataclass(frozen=True)
class Preview:
    version: int
    against: int
    scenarios: int
    changes: list[dict[str, Any]]


class _Previews:
    """Each proposal's last preview with what it was computed from: its
    document, the active version and document it is measured against, and the
    scenario files. One lock: a second look waits for the first's suite run
    instead of starting its own (two at once would share the same cores)."""

    def __init__(self) -> None:
        self.by_version: dict[int, tuple[str, Preview]] = {}
        self.lock = threading.Lock()


_previews = config_store.PerStore(_Previews)


def _compared(conn: Connection, version: int) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """A preview's inputs from the store: the proposed document, the active
    version and its document."""
    new = config_store.document(conn, version)
    active = config_store.active_version(conn)
    return new, active, config_store.document(conn, active) if active else {}


def _measured(new: dict[str, Any], active: int, old: dict[str, Any],
              scenarios: Sequence[Path]) -> str:
    """A digest of everything a preview depends on (a missing file as empty:
    the suite run then says what is wrong with it)."""
    digest = hashlib.sha256(canonical_json([new, active, old]).encode())
    for path in scenarios:
        digest.update(f"\0{path}\0".encode())
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()


def preview(engine: Engine, version: int, scenarios: Sequence[Path]) -> Preview:
    """The postings that would change, over ``scenarios``, if ``version``
    replaced the active one. The suite runs once per proposal while nothing it
    depends on changes (``_measured``); another look reads the kept preview."""
    return _kept(engine, version, scenarios)[1]


def _kept(engine: Engine, version: int, scenarios: Sequence[Path]) -> tuple[str, Preview]:
    """The preview of ``version`` and what it was measured on, run only when
    the kept one was measured on something else."""
    from billbridge.scenarios.diff import diff

    with engine.connect() as conn:
        new, active, old = _compared(conn, version)
    measured = _measured(new, active, old, scenarios)
    kept = _previews(engine)
    with kept.lock:
        found = kept.by_version.get(version)
        if found is None or found[0] != measured:
            found = (measured, Preview(version, active, len(scenarios),
                                       [c.__dict__ for c in diff(old, new, list(scenarios))]))
            kept.by_version[version] = found
    return found


Decision = Literal["approve", "reject"]


def decide(engine: Engine, version: int, decision: Decision, *, actor: str, at: datetime,
           reason: str = "", seen: Seen | None = None) -> str:
    """Approve (never by its proposer) or reject a proposal; its new status.
    An approval made from a preview (``seen``) is refused when that preview is
    no longer the proposal's (another version became active, a scenario changed)."""
    with engine.begin() as conn:
        if decision == "approve":
            if seen is not None and seen.measured != _measured(*_compared(conn, version),
                                                                seen.scenarios):
                raise config_store.ApprovalRefused(
                    f"the preview of version {version} you read is out of date (another "
                    "version became active, or the scenarios changed): read it again, "
                    "then approve")
            config_store.approve(conn, version, actor=actor, at=at)
            return "active"
        config_store.reject(conn, version, actor=actor, at=at, reason=reason)
        return "rejected"


def rollback(engine: Engine, to_version: int, *, actor: str, at: datetime) -> int:
    """Propose an earlier version's document again (a second person approves)."""
    with engine.begin() as conn:
        return config_store.rollback(conn, to_version, actor=actor, at=at)


def bootstrap(hub: Hub, document: dict[str, Any], *, source: str) -> None:
    """Seed an empty hub with ``document``; once a configuration is active,
    changes go through propose and approve, never through a start flag
    (Conflict)."""
    with hub.engine.connect() as conn:
        active = config_store.active_version(conn)
        same = active and config_store.document(conn, active) == json.loads(
            canonical_json(document))
    if active and not same:
        raise Conflict(f"a configuration (v{active}) is already active: propose the change "
                       "with `billbridge config propose` and have it approved")
    if not active:
        hub.activate_config(document, actor="bootstrap", note=f"initial configuration {source}")
