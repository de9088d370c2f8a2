"""The audit log: pages, the chain's check against its latest checkpoint, a
new checkpoint, and the one-time rekey of a store from before keyed audit.
A chain that cannot be read or checked raises engine.audit.AuditError."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from billbridge.engine import audit
from billbridge.engine.audit import AuditBreak, Checkpoint
from billbridge.errors import Conflict
from billbridge.services._rows import plain


def page(conn: Connection, *, cursor: int | None, limit: int) -> list[dict[str, Any]]:
    """Newest first, the entries below ``cursor``."""
    rows = [r for r in audit.entries(conn, limit=100_000)
            if cursor is None or r["id"] < cursor][:limit]
    return plain(rows)


@dataclass
class Chain:
    """What the audit page shows: the latest entries and where the chain breaks."""

    entries: list[dict[str, Any]]
    breaks: list[AuditBreak] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.breaks


def recent(engine: Engine, limit: int = 200) -> Chain:
    with engine.connect() as conn:
        return Chain(audit.entries(conn, limit=limit), audit.verify(conn))


@dataclass
class Verified:
    breaks: list[AuditBreak]
    anchor: Checkpoint | None


def verify(engine: Engine, checkpoint_file: Path | None) -> Verified:
    """The chain checked, and its end against the latest checkpoint in the file."""
    with engine.connect() as conn:
        anchor = audit.latest_checkpoint(conn, checkpoint_file) if checkpoint_file else None
        return Verified(audit.verify(conn, anchor), anchor)


@dataclass
class Checkpointed:
    breaks: list[AuditBreak]
    point: Checkpoint | None


def checkpoint(engine: Engine, checkpoint_file: Path, *, at: datetime) -> Checkpointed:
    """Append the chain's end to the file, if the chain holds up to the last one."""
    with engine.connect() as conn:
        breaks = audit.verify(conn, audit.latest_checkpoint(conn, checkpoint_file))
        point = None if breaks else audit.checkpoint(conn, checkpoint_file, at=at)
    return Checkpointed(breaks, point)


def rekey(engine: Engine, *, actor: str, at: datetime, checkpoint_file: Path | None) -> int:
    """Chain every row again under the hub's key (once, for a store from before
    keyed audit), then checkpoint it; Conflict once the store has a checkpoint."""
    with engine.begin() as conn:
        if checkpoint_file and audit.latest_checkpoint(conn, checkpoint_file):
            raise Conflict("this store has a checkpoint, so its rows were keyed: "
                           "nothing to rekey (`billbridge audit verify`)")
        count = audit.rechain(conn, to_key=audit.key_for(conn), accept_unkeyed=True)
        audit.record(conn, at=at, actor=actor, action="audit.rekey",
                     subject="audit_log", detail={"rows": count})
    if checkpoint_file:
        with engine.connect() as conn:
            audit.checkpoint(conn, checkpoint_file, at=at)
    return count
