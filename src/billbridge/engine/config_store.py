"""Configuration versions in the store: numbered, immutable once written; the
newest active one is what flows price under."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from billbridge.domain.config import Configuration, load_configuration
from billbridge.domain.idempotency import canonical_json
from billbridge.engine import audit
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
