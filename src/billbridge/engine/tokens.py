"""API tokens: random, shown once, stored only as a SHA-256 hash, scoped to
one role, expiring, revocable, last use recorded. Every change is audited."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select, update

from billbridge.engine import audit
from billbridge.store.tables import api_tokens

PREFIX = "bb_"


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"  # retry, replay, dismiss
    FINANCE = "finance"  # read, propose and approve configuration
    AUDITOR = "auditor"  # read-only, audit log
    INGEST = "ingest"  # push events only


class TokenError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: a token's name and role (or an OIDC subject)."""

    name: str
    role: Role
    token_id: int | None = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``."""
    match = re.fullmatch(r"(\d+)([dhm])", text.strip())
    if not match:
        raise TokenError(f"expiry {text!r} must look like 90d, 12h or 30m")
    amount, unit = int(match.group(1)), match.group(2)
    return {"d": timedelta(days=amount), "h": timedelta(hours=amount),
            "m": timedelta(minutes=amount)}[unit]


def create(conn: Connection, *, name: str, role: Role, expires_in: timedelta, actor: str,
           at: datetime) -> tuple[int, str]:
    """Make a token; return (id, the token). The token is not kept."""
    token = PREFIX + secrets.token_urlsafe(32)
    token_id = conn.execute(api_tokens.insert().values(
        name=name, role=role.value, token_hash=_hash(token), prefix=token[:10],
        created_by=actor, created_at=at, expires_at=at + expires_in,
    ).returning(api_tokens.c.id)).scalar_one()
    audit.record(conn, at=at, actor=actor, action="token.create", subject=f"token:{token_id}",
                 detail={"name": name, "role": role.value,
                         "expires_at": (at + expires_in).isoformat()})
    return int(token_id), token


def revoke(conn: Connection, token_id: int, *, actor: str, at: datetime) -> None:
    result = conn.execute(update(api_tokens).where(api_tokens.c.id == token_id,
                                                   api_tokens.c.revoked_at.is_(None))
                          .values(revoked_at=at))
    if result.rowcount:
        audit.record(conn, at=at, actor=actor, action="token.revoke",
                     subject=f"token:{token_id}", detail={})


def _aware(value: datetime, like: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=like.tzinfo)


def authenticate(conn: Connection, token: str, *, at: datetime) -> Identity:
    """The identity behind a bearer token, or TokenError saying why not."""
    if not token.startswith(PREFIX):
        raise TokenError("not a billbridge token")
    row = conn.execute(select(api_tokens).where(api_tokens.c.token_hash == _hash(token))
                       ).first()
    if row is None:
        raise TokenError("unknown token")
    if row.revoked_at is not None:
        raise TokenError("the token was revoked")
    if _aware(row.expires_at, at) <= at:
        raise TokenError("the token has expired")
    conn.execute(update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=at))
    return Identity(row.name, Role(row.role), int(row.id))


def listing(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role,
                               api_tokens.c.prefix, api_tokens.c.created_at,
                               api_tokens.c.expires_at, api_tokens.c.revoked_at,
                               api_tokens.c.last_used_at).order_by(api_tokens.c.id))
    return [dict(r._mapping) for r in rows]
