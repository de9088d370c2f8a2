"""Console sessions: the browser's cookie holds a random id, the store only
its SHA-256 with who it is, the role, when it ends and whether it was
revoked. A session ends at its expiry (eight hours unless told otherwise),
at logout, or as soon as the API token it was opened with is revoked or
expires: the cookie never carries the token itself."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update

from billbridge.domain.times import as_utc
from billbridge.engine.tokens import Identity, Role, TokenError, scope_of
from billbridge.store.tables import api_tokens, console_sessions

LIFETIME = timedelta(hours=8)


class SessionEnded(TokenError):
    """No session, or one that expired or was revoked: log in again."""


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()



def open_session(conn: Connection, who: Identity, *, at: datetime,
                 lifetime: timedelta = LIFETIME) -> str:
    """Start a session for ``who``; return its id (kept by the browser alone).
    It ends no later than the API token it was opened with."""
    expires = at + lifetime
    if who.token_id is not None:
        token_expires = conn.execute(select(api_tokens.c.expires_at)
                                     .where(api_tokens.c.id == who.token_id)).scalar_one()
        expires = min(expires, as_utc(token_expires))
    # Sessions long over are of no use to anyone: keep the table small.
    conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < at - LIFETIME))
    session_id = secrets.token_urlsafe(32)
    conn.execute(console_sessions.insert().values(
        id_hash=_hash(session_id), name=who.name, role=who.role.value, token_id=who.token_id,
        created_at=at, expires_at=expires))
    return session_id


def identify(conn: Connection, session_id: str, *, at: datetime) -> Identity:
    """Who holds this session now, or SessionEnded."""
    row = conn.execute(
        select(console_sessions, api_tokens.c.revoked_at.label("token_revoked_at"),
               api_tokens.c.expires_at.label("token_expires_at"), api_tokens.c.sources,
               api_tokens.c.event_types)
        .outerjoin(api_tokens, api_tokens.c.id == console_sessions.c.token_id)
        .where(console_sessions.c.id_hash == _hash(session_id))).first()
    if row is None:
        raise SessionEnded("no such session")
    if row.revoked_at is not None:
        raise SessionEnded("the session was logged out")
    if as_utc(row.expires_at) <= at:
        raise SessionEnded("the session has expired")
    if row.token_id is not None and (row.token_revoked_at is not None
                                     or as_utc(row.token_expires_at) <= at):
        raise SessionEnded("the token the session was opened with is no longer valid")
    # The token's scope (the sources and events it may submit) holds in the
    # console too: an upload there is checked as through the API.
    return Identity(row.name, Role(row.role), row.token_id,
                    scope_of(row.sources, row.event_types))


def close(conn: Connection, session_id: str, *, at: datetime) -> bool:
    """Revoke a session (logout); True if it was open."""
    result = conn.execute(update(console_sessions)
                          .where(console_sessions.c.id_hash == _hash(session_id),
                                 console_sessions.c.revoked_at.is_(None))
                          .values(revoked_at=at))
    return bool(result.rowcount)
