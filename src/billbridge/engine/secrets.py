"""Connector credentials encrypted at rest with Fernet (AES-128-CBC +
HMAC-SHA256, from `cryptography`). The key comes from BILLBRIDGE_SECRET_KEY or
the file named by BILLBRIDGE_SECRET_KEY_FILE; `rotate` re-encrypts every
connection under a new key. Secrets never appear in logs, errors or listings."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Connection as Db
from sqlalchemy import Engine, select, update

from billbridge.connectors.base import Connection
from billbridge.engine import audit
from billbridge.store.db import dialect_insert
from billbridge.store.tables import connections


class SecretsError(RuntimeError):
    pass


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:12]


def load_key(explicit: bytes | None = None) -> bytes:
    if explicit:
        return explicit
    if os.environ.get("BILLBRIDGE_SECRET_KEY"):
        return os.environ["BILLBRIDGE_SECRET_KEY"].encode()
    path = os.environ.get("BILLBRIDGE_SECRET_KEY_FILE")
    if path:
        return Path(path).read_bytes().strip()
    raise SecretsError("no encryption key: set BILLBRIDGE_SECRET_KEY or "
                       "BILLBRIDGE_SECRET_KEY_FILE (make one with `billbridge secrets new-key`)")


def parse_credentials(text: str) -> dict[str, str]:
    """KEY=VALUE lines (from stdin or a file) as a mapping; blank lines and
    lines starting with # are skipped. An error names the line, never a value."""
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SecretsError(f"credential line {number} is not KEY=VALUE")
        pairs[key.strip()] = value
    return pairs


def new_key() -> bytes:
    return Fernet.generate_key()


class Vault:
    def __init__(self, key: bytes) -> None:
        try:
            self.fernet = Fernet(key)
        except ValueError:
            raise SecretsError("the encryption key is not a valid Fernet key") from None
        self.key_id = key_id(key)
        self.audit_key = audit.derive_key(key)

    def seal(self, credentials: dict[str, str]) -> str:
        return self.fernet.encrypt(json.dumps(credentials).encode()).decode()

    def open(self, sealed: str) -> dict[str, str]:
        try:
            opened: dict[str, str] = json.loads(self.fernet.decrypt(sealed.encode()))
        except InvalidToken:
            raise SecretsError("credentials cannot be decrypted with this key "
                               "(wrong key, or rotated without re-encrypting)") from None
        return opened


def save(db: Db, vault: Vault, connection: Connection, *, actor: str, at: datetime) -> None:
    stmt = dialect_insert(db)(connections).values(
        name=connection.name, vendor=connection.vendor, base_url=connection.base_url,
        credentials=vault.seal(dict(connection.credentials)),
        options=json.dumps(dict(connection.options)), key_id=vault.key_id, updated_at=at)
    db.execute(stmt.on_conflict_do_update(index_elements=[connections.c.name], set_={
        "vendor": stmt.excluded.vendor, "base_url": stmt.excluded.base_url,
        "credentials": stmt.excluded.credentials, "options": stmt.excluded.options,
        "key_id": stmt.excluded.key_id, "updated_at": stmt.excluded.updated_at}))
    audit.record(db, at=at, actor=actor, action="connection.save",
                 subject=f"connection:{connection.name}",
                 detail={"vendor": connection.vendor, "base_url": connection.base_url,
                         "credential_keys": sorted(connection.credentials)})


def load(db: Db, vault: Vault, name: str) -> Connection:
    row = db.execute(select(connections).where(connections.c.name == name)).first()
    if row is None:
        raise SecretsError(f"no connection named {name!r}")
    return Connection(row.name, row.vendor, row.base_url, vault.open(row.credentials),
                      json.loads(row.options))


def keeper(engine: Engine, vault: Vault, name: str,
           now: Callable[[], datetime]) -> Callable[[Mapping[str, str]], None]:
    """What a stored connection's connector calls when the vendor rotates its
    credentials: the changed ones are merged into the sealed set, in a
    transaction of their own, and the change is audited (names only)."""
    def keep(changed: Mapping[str, str]) -> None:
        with engine.begin() as db:
            row = db.execute(select(connections.c.credentials)
                             .where(connections.c.name == name).with_for_update()).first()
            if row is None:
                raise SecretsError(f"no connection named {name!r}")
            merged = {**vault.open(row.credentials), **changed}
            db.execute(update(connections).where(connections.c.name == name).values(
                credentials=vault.seal(merged), key_id=vault.key_id, updated_at=now()))
            audit.record(db, at=now(), actor="billbridge", action="connection.rotated",
                         subject=f"connection:{name}",
                         detail={"credential_keys": sorted(changed)})
    return keep


def load_kept(engine: Engine, vault: Vault, name: str,
              now: Callable[[], datetime]) -> Connection:
    """A stored connection whose rotated credentials are kept in the store."""
    with engine.connect() as db:
        connection = load(db, vault, name)
    return dataclasses.replace(connection, keep=keeper(engine, vault, name, now))


def listing(db: Db) -> list[dict[str, Any]]:
    """What is configured, without any secret."""
    rows = db.execute(select(connections.c.name, connections.c.vendor, connections.c.base_url,
                             connections.c.key_id, connections.c.updated_at))
    return [dict(r._mapping) for r in rows]


def rotate(db: Db, old: Vault, new: Vault, *, actor: str, at: datetime) -> int:
    """Re-encrypt every connection under the new key, and chain the audit log
    again under the key derived from it, in one transaction."""
    count = 0
    for row in db.execute(select(connections.c.name, connections.c.credentials)):
        db.execute(update(connections).where(connections.c.name == row.name).values(
            credentials=new.seal(old.open(row.credentials)), key_id=new.key_id, updated_at=at))
        count += 1
    audit.record(db, at=at, actor=actor, action="secrets.rotate", subject="connections",
                 detail={"from": old.key_id, "to": new.key_id, "connections": count})
    audit.rechain(db, from_key=old.audit_key, to_key=new.audit_key)
    return count
