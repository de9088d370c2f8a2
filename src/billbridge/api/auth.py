"""One role check for every route: a bearer token (or, later, an OIDC token)
becomes an Identity, and each route names the permission it needs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from billbridge.api import oidc
from billbridge.api.oidc import OidcSettings
from billbridge.engine import tokens
from billbridge.engine.tokens import Identity, Role


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
}


class AuthError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def authorize(identity: Identity, permission: Permission) -> None:
    """The role check, for the API and the CLI alike: AuthError (403) unless
    the identity's role grants ``permission``."""
    if identity.role not in GRANTS[permission]:
        raise AuthError(403, "FORBIDDEN", f"role {identity.role.value} may not {permission.value}")


bearer = HTTPBearer(auto_error=False)


def require(permission: Permission) -> Callable[..., Identity]:
    """A FastAPI dependency: the caller's identity, if its role grants ``permission``."""

    def check(request: Request,
              credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Identity:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise AuthError(401, "UNAUTHENTICATED", "a bearer token is required")
        hub = request.app.state.hub
        oidc_settings: OidcSettings | None = request.app.state.oidc
        token = credentials.credentials
        try:
            if oidc_settings is not None and not token.startswith(tokens.PREFIX):
                identity = oidc.authenticate(token, oidc_settings)
            else:
                with hub.engine.begin() as conn:
                    identity = tokens.authenticate(conn, token, at=datetime.now(UTC))
        except tokens.TokenError as exc:
            raise AuthError(401, "UNAUTHENTICATED", str(exc)) from None
        authorize(identity, permission)
        return identity

    return check
