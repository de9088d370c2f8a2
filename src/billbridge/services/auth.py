"""Who is calling and what they may do, for the API, the console and the CLI
alike: a bearer token (or, when configured, a person's OIDC token) becomes an
Identity, a console session stands for one, and one grants table says which
roles hold each permission."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Engine

from billbridge.engine import sessions, tokens
from billbridge.engine.tokens import Identity, Role
from billbridge.errors import Forbidden, Unauthenticated
from billbridge.services import oidc
from billbridge.services.oidc import OidcSettings


class Permission(StrEnum):
    READ = "read"
    ACT = "act"  # retry, replay, dismiss
    ADMINISTER = "administer"  # tokens, stored connections, the audit chain's key
    CONFIG_PROPOSE = "config.propose"
    CONFIG_APPROVE = "config.approve"
    AUDIT = "audit"
    INGEST = "ingest"
    METRICS = "metrics"  # /metrics, unless serve --open-metrics opens it to a scraper
    SCHEMAS = "schemas"  # the canonical event schemas an ingest client validates against
    BILLING_RUN = "billing.run"  # commit a billing run: invoices go to the ERP


GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.READ: frozenset({Role.ADMIN, Role.OPERATOR, Role.FINANCE, Role.AUDITOR}),
    Permission.ACT: frozenset({Role.ADMIN, Role.OPERATOR}),
    Permission.ADMINISTER: frozenset({Role.ADMIN}),
    Permission.CONFIG_PROPOSE: frozenset({Role.ADMIN, Role.FINANCE}),
    Permission.CONFIG_APPROVE: frozenset({Role.ADMIN, Role.FINANCE}),
    Permission.AUDIT: frozenset({Role.ADMIN, Role.AUDITOR, Role.FINANCE}),
    Permission.INGEST: frozenset({Role.ADMIN, Role.INGEST}),
    Permission.METRICS: frozenset({Role.ADMIN, Role.OPERATOR, Role.FINANCE, Role.AUDITOR}),
    Permission.SCHEMAS: frozenset(Role),
    Permission.BILLING_RUN: frozenset({Role.ADMIN, Role.FINANCE}),
}


def allowed(identity: Identity, permission: Permission) -> bool:
    """Whether the identity's role grants ``permission`` (what a face offers it)."""
    return identity.role in GRANTS[permission]


def authorize(identity: Identity, permission: Permission) -> None:
    """Forbidden unless the identity's role grants ``permission``."""
    if not allowed(identity, permission):
        raise Forbidden(f"role {identity.role.value} may not {permission.value}")


def authenticate(engine: Engine, token: str, *, at: datetime,
                 oidc_settings: OidcSettings | None = None) -> Identity:
    """The identity behind a billbridge token, or (when OIDC is configured) a
    person's signed JWT; Unauthenticated saying why a token is refused."""
    try:
        if oidc_settings is not None and not token.startswith(tokens.PREFIX):
            return oidc.authenticate(token, oidc_settings)
        with engine.begin() as conn:
            return tokens.authenticate(conn, token, at=at)
    except tokens.TokenError as exc:
        raise Unauthenticated(str(exc)) from None


def open_session(engine: Engine, who: Identity, *, at: datetime) -> str:
    """A console session for ``who``; its id is kept by the browser alone."""
    with engine.begin() as conn:
        return sessions.open_session(conn, who, at=at)


def session_identity(engine: Engine, session_id: str, *, at: datetime) -> Identity:
    """Who holds the session now; Unauthenticated once it ended."""
    try:
        with engine.connect() as conn:
            return sessions.identify(conn, session_id, at=at)
    except sessions.SessionEnded as exc:
        raise Unauthenticated(str(exc)) from None


def close_session(engine: Engine, session_id: str, *, at: datetime) -> None:
    with engine.begin() as conn:
        sessions.close(conn, session_id, at=at)


SESSION_LIFETIME = sessions.LIFETIME
