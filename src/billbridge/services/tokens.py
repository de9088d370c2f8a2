"""API tokens: created (shown once, stored hashed), listed, revoked. A token
that cannot be made as asked is Invalid, saying what to change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from billbridge.engine import tokens
from billbridge.engine.tokens import Role, Scope
from billbridge.errors import Invalid, NotFound


def create(engine: Engine, *, name: str, role: Role, expires_in: Any, at: datetime,
           actor: str | None, scope: Scope | None = None) -> tuple[int, str]:
    """A new token (id, token). With no ``actor``, the store's first token,
    an admin's, made without one while the store has none."""
    try:
        with engine.begin() as conn:
            if actor is None:
                return tokens.create_first(conn, name=name, expires_in=expires_in, at=at)
            return tokens.create(conn, name=name, role=role, expires_in=expires_in,
                                 actor=actor, at=at, scope=scope)
    except tokens.TokenError as exc:
        raise Invalid(str(exc)) from None


def scope_of(sources: Sequence[str], event_types: Sequence[str]) -> Scope | None:
    """The scope of an ingest token, None when neither is given; Invalid if wrong."""
    try:
        return Scope.of(sources, event_types) if sources or event_types else None
    except tokens.TokenError as exc:
        raise Invalid(str(exc)) from None


def listing(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return tokens.listing(conn)


def revoke(engine: Engine, token_id: int, *, actor: str, at: datetime) -> bool:
    """Revoke a token; True when this call revoked it, False when it was revoked
    already. NotFound for an id the store has never issued."""
    with engine.begin() as conn:
        revoked = tokens.revoke(conn, token_id, actor=actor, at=at)
    if revoked is None:
        raise NotFound(f"no token {token_id}: `billbridge token list` shows the ids")
    return revoked
