"""Optional OIDC bearer tokens for people: a JWT signed by a configured
issuer, checked against a JWKS file, its role taken from a claim and mapped to
billbridge's roles. Configured by BILLBRIDGE_OIDC_ISSUER,
BILLBRIDGE_OIDC_AUDIENCE, BILLBRIDGE_OIDC_JWKS_FILE and (optionally)
BILLBRIDGE_OIDC_ROLE_CLAIM (default "roles")."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import jwt

from billbridge.engine.tokens import Identity, Role, TokenError


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    audience: str
    jwks: dict[str, object]
    role_claim: str = "roles"

    @classmethod
    def from_env(cls) -> OidcSettings | None:
        issuer = os.environ.get("BILLBRIDGE_OIDC_ISSUER")
        jwks_file = os.environ.get("BILLBRIDGE_OIDC_JWKS_FILE")
        if not issuer or not jwks_file:
            return None
        return cls(issuer, os.environ.get("BILLBRIDGE_OIDC_AUDIENCE", "billbridge"),
                   json.loads(Path(jwks_file).read_text()),
                   os.environ.get("BILLBRIDGE_OIDC_ROLE_CLAIM", "roles"))


def authenticate(token: str, settings: OidcSettings) -> Identity:
    """The person behind a signed JWT, with the most powerful billbridge role
    their claim grants; TokenError says why a token is refused."""
    try:
        header = jwt.get_unverified_header(token)
        keys = jwt.PyJWKSet.from_dict(settings.jwks)
        key = next((k for k in keys.keys if k.key_id == header.get("kid")), None)
        if key is None:
            raise TokenError(f"no key {header.get('kid')!r} in the issuer's JWKS")
        claims = jwt.decode(token, key.key, algorithms=["RS256", "ES256"],
                            audience=settings.audience, issuer=settings.issuer,
                            options={"require": ["exp", "iss", "aud", "sub"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("the token has expired") from None
    except jwt.PyJWTError as exc:
        raise TokenError(f"the token is not valid: {exc}") from None
    granted = claims.get(settings.role_claim) or []
    granted = [granted] if isinstance(granted, str) else list(granted)
    order = [Role.ADMIN, Role.FINANCE, Role.OPERATOR, Role.AUDITOR, Role.INGEST]
    role = next((r for r in order if r.value in granted), None)
    if role is None:
        raise TokenError(f"the token grants none of the billbridge roles ({granted})")
    return Identity(str(claims.get("email") or claims["sub"]), role)
