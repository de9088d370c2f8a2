"""Configuration versions in the store: numbered, immutable once written; the
newest active one is what flows price under."""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, func, select, update

from billbridge.domain.config import ConfigError, Configuration, load_configuration
from billbridge.domain.idempotency import canonical_json
from billbridge.engine import audit
from billbridge.errors import Conflict, NotFound
from billbridge.store.tables import config_versions


class ConfigCache:
    """Parsed configurations by version (a version never changes once written)."""

    def __init__(self) -> None:
        self._by_version: dict[int, Configuration] = {}
        self._lock = threading.Lock()

    def get(self, conn: Connection, version: int) -> Configuration:
        with self._lock:
            cached = self._by_version.get(version)
        if cached is not None:
            return cached
        row = conn.execute(select(config_versions.c.document)
                           .where(config_versions.c.version == version)).one()
        parsed = load_configuration(json.loads(row.document))
        with self._lock:
            self._by_version[version] = parsed
        return parsed


T = TypeVar("T")


class PerStore(Generic[T]):
    """One ``T`` per store, made on first use and dropped with its engine. What
    is cached by version number is never shared between stores: their version
    numbers repeat."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._of: weakref.WeakKeyDictionary[Engine, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __call__(self, engine: Engine) -> T:
        with self._lock:
            found = self._of.get(engine)
            if found is None:
                found = self._of[engine] = self._make()
            return found


configs = PerStore(ConfigCache)
"""The parsed configurations of a store: ``configs(engine).get(conn, version)``
parses a version once for every reader of that engine (worker, polls, alerts)."""


def active_version(conn: Connection) -> int:
    """The active version number, 0 when none was ever activated."""
    value = conn.execute(select(func.max(config_versions.c.version))
                         .where(config_versions.c.status == "active")).scalar()
    return int(value or 0)


def activate(conn: Connection, document: dict[str, Any], *, actor: str, at: datetime,
             approved_by: str | None = None, note: str | None = None) -> int:
    """Validate ``document`` and make it the active version.

    An identical document to the active one creates no new version.
    """
    load_configuration(document)  # raises ConfigError naming every problem
    text = canonical_json(document)
    digest = hashlib.sha256(text.encode()).hexdigest()
    current = active_version(conn)
    if current:
        same = conn.execute(select(config_versions.c.digest)
                            .where(config_versions.c.version == current)).scalar()
        if same == digest:
            return current
    newest = conn.execute(select(func.max(config_versions.c.version))).scalar() or 0
    version = int(newest) + 1
    conn.execute(update(config_versions).where(config_versions.c.status == "active")
                 .values(status="superseded"))
    conn.execute(config_versions.insert().values(
        version=version, document=text, digest=digest, status="active", proposed_by=actor,
        approved_by=approved_by or actor, note=note, created_at=at, activated_at=at))
    audit.record(conn, at=at, actor=actor, action="config.activate",
                 subject=f"config:{version}", detail={"digest": digest, "note": note})
    return version


class ApprovalRefused(Conflict):
    """A configuration change that cannot be approved, with why."""

    default_code = "APPROVAL_REFUSED"


class VersionNotFound(NotFound):
    """No configuration version has this number."""

    def __init__(self, version: int) -> None:
        super().__init__(f"there is no configuration version {version}")


def propose(conn: Connection, document: dict[str, Any], *, actor: str, at: datetime,
            note: str | None = None) -> int:
    """Store a validated document as a proposed version, not yet in force. An
    empty document, or one identical to the active version, changes nothing
    and is refused (ConfigError saying so)."""
    if not document:
        raise ConfigError("the proposed configuration is empty: propose the whole document "
                          "(every section the firm uses), not a part of it")
    load_configuration(document)
    text = canonical_json(document)
    digest = hashlib.sha256(text.encode()).hexdigest()
    current = active_version(conn)
    if current and conn.execute(select(config_versions.c.digest).where(
            config_versions.c.version == current)).scalar() == digest:
        raise ConfigError(f"the proposal is identical to the active version {current}: "
                          "there is nothing to approve")
    newest = conn.execute(select(func.max(config_versions.c.version))).scalar() or 0
    version = int(newest) + 1
    conn.execute(config_versions.insert().values(
        version=version, document=text, digest=digest,
        status="proposed", proposed_by=actor, note=note, created_at=at))
    audit.record(conn, at=at, actor=actor, action="config.propose",
                 subject=f"config:{version}", detail={"note": note})
    return version


def approve(conn: Connection, version: int, *, actor: str, at: datetime) -> int:
    """Make a proposed version active. Maker-checker: never by its proposer."""
    query = select(config_versions).where(config_versions.c.version == version)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise VersionNotFound(version)
    if row.status != "proposed":
        raise ApprovalRefused(f"version {version} is {row.status}, not proposed")
    if row.proposed_by == actor:
        raise ApprovalRefused(f"{actor} proposed version {version} and cannot also approve it")
    conn.execute(update(config_versions).where(config_versions.c.status == "active")
                 .values(status="superseded"))
    conn.execute(update(config_versions).where(config_versions.c.version == version)
                 .values(status="active", approved_by=actor, activated_at=at))
    audit.record(conn, at=at, actor=actor, action="config.approve",
                 subject=f"config:{version}", detail={"proposed_by": row.proposed_by})
    return version


def reject(conn: Connection, version: int, *, actor: str, at: datetime, reason: str) -> None:
    result = conn.execute(update(config_versions).where(
        config_versions.c.version == version, config_versions.c.status == "proposed")
        .values(status="rejected", approved_by=actor, note=reason))
    if result.rowcount == 0:
        if conn.execute(select(config_versions.c.status)
                        .where(config_versions.c.version == version)).first() is None:
            raise VersionNotFound(version)
        raise ApprovalRefused(f"version {version} is not a proposal")
    audit.record(conn, at=at, actor=actor, action="config.reject", subject=f"config:{version}",
                 detail={"reason": reason})


def rollback(conn: Connection, to_version: int, *, actor: str, at: datetime) -> int:
    """Going back is itself a change: propose the old document again."""
    row = conn.execute(select(config_versions.c.document)
                       .where(config_versions.c.version == to_version)).first()
    if row is None:
        raise VersionNotFound(to_version)
    return propose(conn, json.loads(row.document), actor=actor, at=at,
                   note=f"rollback to version {to_version}")


def versions(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(config_versions.c.version, config_versions.c.status,
                               config_versions.c.proposed_by, config_versions.c.approved_by,
                               config_versions.c.note, config_versions.c.created_at,
                               config_versions.c.activated_at, config_versions.c.digest)
                        .order_by(config_versions.c.version.desc()))
    return [dict(r._mapping) for r in rows]


def document(conn: Connection, version: int) -> dict[str, Any]:
    row = conn.execute(select(config_versions.c.document)
                       .where(config_versions.c.version == version)).first()
    if row is None:
        raise VersionNotFound(version)
    loaded: dict[str, Any] = json.loads(row.document)
    return loaded
