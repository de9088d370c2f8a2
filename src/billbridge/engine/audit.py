"""The append-only audit log. Each row carries an HMAC-SHA256 of its content
and of the row before it, under a key derived from the hub's secret key (never
in the store), so nobody without the key can edit, delete or recompute rows
unseen. The chain's end is anchored by checkpoints kept outside the rows
(``checkpoint``): cutting the last rows off, or rewriting the chain, no longer
matches the latest one. ``verify`` names every row that does not hold."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, func, select, update

from billbridge.domain.idempotency import canonical_json
from billbridge.domain.times import as_utc
from billbridge.store.files import create_private
from billbridge.store.tables import audit_log

GENESIS = "0" * 64
log = structlog.get_logger("billbridge.audit")

# A store in memory lives and dies with its process (a scenario run, a
# preview): its rows are chained under a key that dies with it.
_IN_MEMORY_KEY = secrets.token_bytes(32)


class AuditError(RuntimeError):
    """The audit log cannot be written, checked or rekeyed; the message says why."""


def derive_key(secret_key: bytes) -> bytes:
    """The chain's key from the hub's secret key (the one that seals connector
    credentials): one key to keep, never the same bytes used twice."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"billbridge audit chain v1").derive(secret_key)


def _in_memory(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite" and conn.engine.url.database in (None, "", ":memory:")


def key_for(conn: Connection) -> bytes:
    """The key this store's chain is kept under."""
    if _in_memory(conn):
        return _IN_MEMORY_KEY
    from billbridge.engine import secrets as sealing  # it audits, so imported late

    try:
        return derive_key(sealing.load_key())
    except sealing.SecretsError:
        raise AuditError("the audit log is keyed by the hub's secret key: set "
                         "BILLBRIDGE_SECRET_KEY_FILE (make one with `billbridge secrets "
                         "new-key FILE`) or BILLBRIDGE_SECRET_KEY") from None


def _material(prev_hash: str, at: datetime, actor: str, action: str, subject: str,
              detail: str, correlation_id: str | None) -> bytes:
    return canonical_json([prev_hash, as_utc(at).isoformat(), actor, action,
                           subject, detail, correlation_id]).encode()


def _mac(key: bytes, material: bytes) -> str:
    return hmac.new(key, material, hashlib.sha256).hexdigest()


def _unkeyed(material: bytes) -> str:
    """How rows were chained before the chain had a key (recognised, never written)."""
    return hashlib.sha256(material).hexdigest()


def _row_material(row: Any, prev_hash: str | None = None) -> bytes:
    return _material(row.prev_hash if prev_hash is None else prev_hash, row.at, row.actor,
                     row.action, row.subject, row.detail, row.correlation_id)


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit row to append."""

    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any] | None = None
    correlation_id: str | None = None


def record(conn: Connection, *, at: datetime, actor: str, action: str, subject: str,
           detail: dict[str, Any] | None = None, correlation_id: str | None = None) -> None:
    """Append one audit row in the caller's transaction."""
    record_many(conn, [Entry(at, actor, action, subject, detail, correlation_id)])


def record_many(conn: Connection, entries: list[Entry]) -> None:
    """Append rows in order in the caller's transaction, each chained to the one
    before it; one read of the chain's end and one insert however many."""
    if not entries:
        return
    key = key_for(conn)
    if conn.dialect.name == "postgresql":
        # Appenders take turns so that the chain never forks.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(724101)")
    prev = conn.execute(select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1))
    prev_hash = prev.scalar() or GENESIS
    rows = []
    for entry in entries:
        detail_json = canonical_json(entry.detail or {})
        digest = _mac(key, _material(prev_hash, entry.at, entry.actor, entry.action,
                                     entry.subject, detail_json, entry.correlation_id))
        rows.append({"at": entry.at, "actor": entry.actor, "action": entry.action,
                     "subject": entry.subject, "detail": detail_json,
                     "correlation_id": entry.correlation_id, "prev_hash": prev_hash,
                     "hash": digest})
        prev_hash = digest
    conn.execute(audit_log.insert(), rows)


# -- checkpoints: the chain's end, kept outside the rows ----------------------

@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain's last row, its HMAC and how many rows led to it, at a time."""

    store: str
    at: str
    row_id: int
    count: int
    head: str


def store_name(conn: Connection) -> str:
    """Which store a checkpoint belongs to (its URL, without a password)."""
    url = conn.engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        url = url.set(database=str(Path(url.database or "").resolve()))
    return url.render_as_string(hide_password=True)


def head(conn: Connection) -> tuple[int, str, int]:
    """(last row id, its HMAC, number of rows); (0, GENESIS, 0) when empty."""
    last = conn.execute(select(audit_log.c.id, audit_log.c.hash)
                        .order_by(audit_log.c.id.desc()).limit(1)).first()
    count = int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())
    return (int(last.id), str(last.hash), count) if last else (0, GENESIS, 0)


def _seal(key: bytes, point: Checkpoint) -> str:
    return _mac(key, canonical_json(asdict(point)).encode())


def checkpoint(conn: Connection, path: Path, *, at: datetime) -> Checkpoint:
    """Append the chain's head to ``path`` (created 0600), signed with the key,
    and log it: a second copy wherever the logs are shipped."""
    row_id, digest, count = head(conn)
    point = Checkpoint(store_name(conn), at.astimezone(UTC).isoformat(), row_id, count, digest)
    create_private(path)
    line = json.dumps(asdict(point) | {"mac": _seal(key_for(conn), point)})
    with path.open("a") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())
    log.info("audit.checkpoint", store=point.store, row_id=row_id, count=count, head=digest)
    return point


def latest_checkpoint(conn: Connection, path: Path) -> Checkpoint | None:
    """The newest checkpoint of this store in ``path``; AuditError if that line
    is not signed with this hub's key (written by someone without it)."""
    if not path.exists():
        return None
    store = store_name(conn)
    latest: dict[str, Any] | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            item = json.loads(line)
        except ValueError:
            raise AuditError(f"{path}: line {number} is not a checkpoint") from None
        if isinstance(item, dict) and item.get("store") == store:
            latest = item | {"line": number}
    if latest is None:
        return None
    try:
        point = Checkpoint(str(latest["store"]), str(latest["at"]), int(latest["row_id"]),
                           int(latest["count"]), str(latest["head"]))
    except (KeyError, TypeError, ValueError):
        raise AuditError(f"{path}: line {latest['line']} is not a checkpoint") from None
    if not hmac.compare_digest(str(latest.get("mac", "")), _seal(key_for(conn), point)):
        raise AuditError(f"{path}: line {latest['line']} is not signed with this hub's key "
                         "(written without it, or the key changed since)")
    return point


# -- verification ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AuditBreak:
    row_id: int
    problem: str


UNKEYED = ("was chained without a key (a row from before keyed audit; run "
           "`billbridge audit rekey` once after upgrading)")


def verify(conn: Connection, anchor: Checkpoint | None = None) -> list[AuditBreak]:
    """Every place where the chain does not hold (empty when it is intact), and,
    given the latest checkpoint, whether the chain still reaches it."""
    key = key_for(conn)
    breaks: list[AuditBreak] = []
    prev_hash = GENESIS
    for row in conn.execute(select(audit_log).order_by(audit_log.c.id)):
        if row.prev_hash != prev_hash:
            breaks.append(AuditBreak(row.id, "a row before it was deleted or altered"))
        material = _row_material(row)
        if not hmac.compare_digest(row.hash, _mac(key, material)):
            breaks.append(AuditBreak(row.id, UNKEYED if row.hash == _unkeyed(material) else
                                     "its content does not match its HMAC (edited, or "
                                     "chained by someone without the key)"))
        prev_hash = row.hash
    if anchor is not None:
        breaks += _against(conn, anchor)
    return breaks


def _against(conn: Connection, anchor: Checkpoint) -> list[AuditBreak]:
    if anchor.row_id == 0:
        return []
    row = conn.execute(select(audit_log.c.hash).where(audit_log.c.id == anchor.row_id)).first()
    if row is None:
        last_id, _, _ = head(conn)
        return [AuditBreak(anchor.row_id, f"is gone: the checkpoint of {anchor.at} ends the "
                                          f"chain here, the store ends at row {last_id} "
                                          "(rows were deleted)")]
    breaks = []
    if row.hash != anchor.head:
        breaks.append(AuditBreak(anchor.row_id, f"is not the row the checkpoint of {anchor.at} "
                                                "recorded (the chain was rewritten)"))
    count = int(conn.execute(select(func.count()).select_from(audit_log)
                             .where(audit_log.c.id <= anchor.row_id)).scalar_one())
    if count != anchor.count:
        breaks.append(AuditBreak(anchor.row_id, f"the checkpoint of {anchor.at} counted "
                                                f"{anchor.count} rows up to here, the store "
                                                f"has {count}"))
    return breaks


# -- rekeying: unkeyed rows after an upgrade, or a new secret key ----------------

def rechain(conn: Connection, *, to_key: bytes, from_key: bytes | None = None,
            accept_unkeyed: bool = False) -> int:
    """Chain every row again under ``to_key``, in the caller's transaction,
    after checking each one holds under ``from_key`` (default: the store's key)
    or, with ``accept_unkeyed``, as an unkeyed row of a store from before keyed
    audit, at the start of the chain only. Returns the number of rows."""
    old = from_key or key_for(conn)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(724101)")
    rows = list(conn.execute(select(audit_log).order_by(audit_log.c.id)))
    prev_hash, keyed_seen = GENESIS, False
    for row in rows:
        material = _row_material(row)
        keyed = hmac.compare_digest(row.hash, _mac(old, material))
        unkeyed = accept_unkeyed and not keyed_seen and row.hash == _unkeyed(material)
        if row.prev_hash != prev_hash or not (keyed or unkeyed):
            raise AuditError(f"audit row {row.id} does not hold: nothing was rekeyed "
                             "(`billbridge audit verify` says why)")
        keyed_seen = keyed_seen or keyed
        prev_hash = row.hash
    prev_hash = GENESIS
    for row in rows:
        digest = _mac(to_key, _row_material(row, prev_hash))
        conn.execute(update(audit_log).where(audit_log.c.id == row.id)
                     .values(prev_hash=prev_hash, hash=digest))
        prev_hash = digest
    return len(rows)


def entries(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit))
    return [dict(r._mapping) | {"detail": json.loads(r.detail)} for r in rows]
