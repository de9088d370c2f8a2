"""The API's role check: a FastAPI dependency that turns the bearer token into
an Identity (services.auth) and requires the permission a route names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from billbridge.engine.tokens import Identity
from billbridge.errors import Unauthenticated
from billbridge.services.auth import Permission, authenticate, authorize

__all__ = ["Permission", "require"]

bearer = HTTPBearer(auto_error=False)


def require(permission: Permission) -> Callable[..., Identity]:
    """A FastAPI dependency: the caller's identity, if its role grants ``permission``."""

    def check(request: Request,
              credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Identity:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthenticated("a bearer token is required")
        identity = authenticate(request.app.state.hub.engine, credentials.credentials,
                                at=datetime.now(UTC), oidc_settings=request.app.state.oidc)
        authorize(identity, permission)
        return identity

    return check
