"""API tokens: random, shown once, stored only as a SHA-256 hash, scoped to
one role, expiring, revocable, last use recorded. Every change is audited.
A token that may submit events is also bound to the sources and event types
it may submit; the hub's own source and ERP-origin events are nobody's."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select, update

from billbridge.domain.events import ERP_ORIGIN, HUB_SOURCE, PAYLOADS
from billbridge.domain.times import as_utc
from billbridge.engine import audit
from billbridge.store.tables import api_tokens

PREFIX = "bb_"


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"  # retry, replay, dismiss
    FINANCE = "finance"  # read, propose and approve configuration
    AUDITOR = "auditor"  # read-only, audit log
    INGEST = "ingest"  # push events only


INGEST_ROLES = frozenset({Role.ADMIN, Role.INGEST})
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class TokenError(ValueError):
    pass


class OutOfScope(PermissionError):
    """Events the calling token may not submit; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Scope:
    """The sources a token may submit events for, and the event types it may submit."""

    sources: frozenset[str]
    event_types: frozenset[str]

    @classmethod
    def of(cls, sources: Iterable[str], event_types: Iterable[str]) -> Scope:
        """A scope any token may hold, or TokenError naming what is wrong."""
        scope = cls(frozenset(sources), frozenset(event_types))
        for source in sorted(scope.sources):
            if source == HUB_SOURCE:
                raise TokenError(f"--source {HUB_SOURCE} is the hub's own: its events are made "
                                 "by the hub, never submitted")
            if not _NAME.fullmatch(source):
                raise TokenError(f"--source {source!r} is not a source name (lower-case "
                                 "letters, digits, '.', '_' or '-')")
        for kind in sorted(scope.event_types):
            if kind in ERP_ORIGIN:
                raise TokenError(f"--event-type {kind} comes only from the hub's own ERP "
                                 "readers; no token may submit it")
            if kind not in PAYLOADS:
                raise TokenError(f"--event-type {kind!r} is not an event type; known: "
                                 f"{', '.join(sorted(PAYLOADS.keys() - ERP_ORIGIN))}")
        return scope


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: a token's name and role (or an OIDC subject), and for a
    token that may submit events, what it may submit."""

    name: str
    role: Role
    token_id: int | None = None
    scope: Scope | None = None

    def check_source(self, source: str) -> None:
        """OutOfScope unless this identity may submit events from ``source``."""
        if source == HUB_SOURCE:
            raise OutOfScope(f"source {HUB_SOURCE!r} is the hub's own: its events are made by "
                             "the hub and never accepted from outside")
        if self.scope is None:
            raise OutOfScope(f"{self.name} may submit no events: use a token made with "
                             "`billbridge token create --role ingest --source NAME "
                             "--event-type TYPE`")
        if source not in self.scope.sources:
            raise OutOfScope(f"{self.name} may submit events from "
                             f"{', '.join(sorted(self.scope.sources))} only, not from "
                             f"{source!r} (token create --source)")

    def check_event_types(self, source: str, event_types: Iterable[str]) -> None:
        """OutOfScope unless every one of ``event_types`` is this identity's to submit."""
        self.check_source(source)
        assert self.scope is not None
        for kind in event_types:
            if kind in ERP_ORIGIN:
                raise OutOfScope(f"{kind} events come only from the hub's own ERP readers "
                                 "and are never accepted from outside")
            if kind not in self.scope.event_types:
                raise OutOfScope(f"{self.name} may submit "
                                 f"{', '.join(sorted(self.scope.event_types))} events only, "
                                 f"not {kind!r} (token create --event-type)")


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
           at: datetime, scope: Scope | None = None) -> tuple[int, str]:
    """Make a token; return (id, the token). The token is not kept. An ingest
    token needs a scope naming at least one source and one event type."""
    if scope is not None and role not in INGEST_ROLES:
        raise TokenError(f"a {role.value} token submits no events: drop --source and "
                         "--event-type, or use --role ingest")
    if role is Role.INGEST and (scope is None or not scope.sources):
        raise TokenError("an ingest token needs --source: the source(s) whose events it "
                         "may submit, e.g. --source harvest")
    if role is Role.INGEST and (scope is None or not scope.event_types):
        raise TokenError("an ingest token needs --event-type: the event type(s) it may "
                         "submit, e.g. --event-type time_entry.upserted")
    token = PREFIX + secrets.token_urlsafe(32)
    kept = {} if scope is None else {"sources": json.dumps(sorted(scope.sources)),
                                      "event_types": json.dumps(sorted(scope.event_types))}
    token_id = conn.execute(api_tokens.insert().values(
        name=name, role=role.value, token_hash=_hash(token), prefix=token[:10],
        created_by=actor, created_at=at, expires_at=at + expires_in, **kept,
    ).returning(api_tokens.c.id)).scalar_one()
    detail: dict[str, Any] = {"name": name, "role": role.value,
                              "expires_at": (at + expires_in).isoformat()}
    if scope is not None:
        detail |= {"sources": sorted(scope.sources), "event_types": sorted(scope.event_types)}
    audit.record(conn, at=at, actor=actor, action="token.create", subject=f"token:{token_id}",
                 detail=detail)
    return int(token_id), token


def revoke(conn: Connection, token_id: int, *, actor: str, at: datetime) -> bool | None:
    """Revoke a token: True when this call revoked it, False when it was revoked
    already, None when the store has no token by that id."""
    result = conn.execute(update(api_tokens).where(api_tokens.c.id == token_id,
                                                   api_tokens.c.revoked_at.is_(None))
                          .values(revoked_at=at))
    if result.rowcount:
        audit.record(conn, at=at, actor=actor, action="token.revoke",
                     subject=f"token:{token_id}", detail={})
        return True
    known = conn.execute(select(api_tokens.c.id).where(api_tokens.c.id == token_id)).first()
    return False if known is not None else None


def create_first(conn: Connection, *, name: str, expires_in: timedelta,
                 at: datetime) -> tuple[int, str]:
    """The bootstrap: the store's first token, an admin's, made without a token,
    only while the store has no token at all (revoked and expired ones count)."""
    if conn.dialect.name == "postgresql":
        # Two bootstraps at once: the second waits, then finds the first's token.
        conn.exec_driver_sql("LOCK TABLE api_tokens IN EXCLUSIVE MODE")
    if conn.execute(select(api_tokens.c.id).limit(1)).first() is not None:
        raise TokenError("this store has tokens already: act with an admin's "
                         "(BILLBRIDGE_TOKEN or --token-file)")
    return create(conn, name=name, role=Role.ADMIN, expires_in=expires_in, actor="bootstrap",
                  at=at)



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
    if as_utc(row.expires_at) <= at:
        raise TokenError("the token has expired")
    conn.execute(update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=at))
    return Identity(row.name, Role(row.role), int(row.id),
                    scope_of(row.sources, row.event_types))


def scope_of(sources: str | None, event_types: str | None) -> Scope | None:
    """A token's scope as its row keeps it (two JSON lists), or None."""
    if sources is None or event_types is None:
        return None
    return Scope(frozenset(json.loads(sources)), frozenset(json.loads(event_types)))


def listing(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role,
                               api_tokens.c.prefix, api_tokens.c.created_at,
                               api_tokens.c.expires_at, api_tokens.c.revoked_at,
                               api_tokens.c.last_used_at, api_tokens.c.sources,
                               api_tokens.c.event_types).order_by(api_tokens.c.id))
    return [{**r._mapping, "sources": json.loads(r.sources or "[]"),
             "event_types": json.loads(r.event_types or "[]")} for r in rows]
