"""OAuth 2.0 client credentials against a Microsoft Entra ID token endpoint
(the v2.0 form request), as every Dynamics 365 service asks for them, and
against any token endpoint that takes the same form (Sage Intacct's REST
API: no scope, fields of its own in ``form``): one token per connection,
fetched again ahead of its expiry and on demand (after a 401)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from billbridge.connectors.base import PermanentError, TransientError

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"


def token_endpoint(tenant: str, authority: str | None = None) -> str:
    return f"{(authority or DEFAULT_AUTHORITY).rstrip('/')}/{tenant}/oauth2/v2.0/token"


class EntraToken:
    """The bearer token of one application: ``current()`` renews it once it
    is within ``refresh_margin`` seconds of expiry (by ``now``, a monotonic
    clock), ``renew()`` fetches a new one at once. ``service`` names the
    vendor in errors; ``hint`` ends the message of a refused request (what
    else to check)."""

    def __init__(self, service: str, token_url: str, *, client_id: str, client_secret: str,
                 scope: str, now: Callable[[], float], refresh_margin: float = 300.0,
                 timeout: float = 30.0, verify: Any = True,
                 transport: httpx.BaseTransport | None = None, hint: str = "",
                 form: Mapping[str, str] | None = None,
                 checks: str = "the tenant, client_id, client_secret and scope") -> None:
        self.service, self.token_url, self.scope = service, token_url, scope
        self.form, self.checks = dict(form or {}), checks
        self.client_id, self.client_secret = client_id, client_secret
        self.now, self.refresh_margin, self.hint = now, refresh_margin, hint
        # The token endpoint is Entra ID's, not the environment's: its calls do
        # not count against the environment's limits.
        self._http = httpx.Client(timeout=timeout, verify=verify, transport=transport)
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.fetched = 0

    def close(self) -> None:
        self._http.close()

    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.current()}"}

    def current(self) -> str:
        with self._lock:
            if self._token is None or self.now() >= self._expires_at - self.refresh_margin:
                self._fetch()
            assert self._token is not None
            return self._token

    def renew(self) -> str:
        with self._lock:
            self._fetch()
            assert self._token is not None
            return self._token

    def _fetch(self) -> None:
        form = {"grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self.client_secret, **self.form}
        if self.scope:
            form["scope"] = self.scope
        try:
            response = self._http.post(self.token_url, data=form)
        except httpx.TransportError as exc:
            raise TransientError(f"{self.service} token request to {self.token_url}: "
                                 f"{exc.__class__.__name__}", code="CONNECTION") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"{self.service} token request: HTTP {response.status_code}",
                                 code=f"HTTP_{response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not body.get("access_token"):
            reason = body.get("error_description") or body.get("error") or response.text[:200]
            raise PermanentError(f"{self.service} token request refused (HTTP "
                                 f"{response.status_code}): {reason}; check {self.checks} "
                                 f"of this connection"
                                 f"{self.hint}", code="TARGET_AUTH")
        self._token = str(body["access_token"])
        self._expires_at = self.now() + float(body.get("expires_in") or 3600)
        self.fetched += 1
