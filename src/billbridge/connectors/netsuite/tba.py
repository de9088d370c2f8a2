"""NetSuite Token-Based Authentication: OAuth 1.0a request signing with
HMAC-SHA256 and ``realm=<ACCOUNT_ID>``, computed by ``oauthlib``.

Every request is signed afresh (a new nonce and timestamp), so a retry after a
timeout or a 429 is never refused as a replay. Only the method, the URL and
its query parameters are signed: NetSuite's JSON bodies are not form-encoded.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Literal, cast

import httpx
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, Client

_Method = Literal["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"]


@dataclass(frozen=True)
class TbaCredentials:
    account: str  # the realm: the account id as NetSuite spells it, e.g. 1234567_SB1
    consumer_key: str
    consumer_secret: str
    token_id: str
    token_secret: str

    def __repr__(self) -> str:  # secrets never reach a log line
        return f"TbaCredentials(account={self.account!r}, consumer_key=…, token_id=…)"


class TbaAuth(httpx.Auth):
    """An httpx auth flow that adds the OAuth 1.0a ``Authorization`` header."""

    def __init__(self, credentials: TbaCredentials) -> None:
        self.credentials = credentials

    def authorization(self, method: str, url: str) -> str:
        c = self.credentials
        client = Client(c.consumer_key, client_secret=c.consumer_secret,
                        resource_owner_key=c.token_id, resource_owner_secret=c.token_secret,
                        signature_method=SIGNATURE_HMAC_SHA256, realm=c.account)
        _uri, headers, _body = client.sign(url, http_method=cast(_Method, method.upper()))
        return str(headers["Authorization"])

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self.authorization(request.method, str(request.url))
        yield request
