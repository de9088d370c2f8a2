"""JSON-RPC client of a Tryton server: the only code here that speaks to it.

Tryton answers every call at ``POST /{database}/rpc/`` with HTTP 200, a
result or an ``error``: ``[exception class, args]`` for Tryton's own
exceptions (``UserError``, ``UserWarning``, ``ConcurrencyException``, ...) and
``[message, traceback]`` for anything else. The client turns those into
``TrytonError`` (a refusal of the call, carrying the exception class) or
``TransientError`` (worth a retry), and rides the session: one
``common.db.login`` when the first call is made, again on a 401 (an expired
session), never per call.

Values cross the wire in Tryton's JSON dialect: ``Decimal``, ``date``,
``datetime`` and ``timedelta`` are objects tagged with ``__class__``;
``encode``/``decode`` convert, so money stays ``Decimal`` end to end.
"""

from __future__ import annotations

import base64
import itertools
import threading
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from billbridge.connectors.base import PermanentError, RateLimit, TransientError
from billbridge.connectors.http import VendorHttp, read_error

# Tryton exception classes that mean "try the same call again later".
_TRANSIENT = frozenset({"ConcurrencyException", "RateLimitException", "TimeOutException"})
# A server fault whose text says the database was busy, not the request wrong.
_BUSY_MARKS = ("OperationalError", "database is locked", "could not serialize", "deadlock")
MAX_MESSAGE = 300


class TrytonError(PermanentError):
    """Tryton refused the call (a ``UserError``, a ``UserWarning``, an access
    rule, a server fault): retrying it unchanged gives the same answer."""

    def __init__(self, exception: str, message: str, *, method: str,
                 warning: str | None = None) -> None:
        super().__init__(f"tryton {method}: {exception}: {message}",
                         code=f"TRYTON_{_snake(exception).upper()}")
        self.exception = exception
        self.reason = message
        self.warning = warning  # the warning's name, for a UserWarning


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower()
                   for i, c in enumerate(name))


def encode(value: Any) -> Any:
    """Canonical Python values in Tryton's JSON dialect (recursively)."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, datetime):
        return {"__class__": "datetime", "year": value.year, "month": value.month,
                "day": value.day, "hour": value.hour, "minute": value.minute,
                "second": value.second, "microsecond": value.microsecond}
    if isinstance(value, date):
        return {"__class__": "date", "year": value.year, "month": value.month,
                "day": value.day}
    if isinstance(value, timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, Mapping):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    """Tryton's tagged objects back to Python values (recursively). Datetimes
    stay naive: Tryton keeps them in UTC without saying so."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("__class__")
    if kind == "Decimal":
        return Decimal(str(value["decimal"]))
    if kind == "date":
        return date(value["year"], value["month"], value["day"])
    if kind == "datetime":
        return datetime(value["year"], value["month"], value["day"], value.get("hour", 0),
                        value.get("minute", 0), value.get("second", 0),
                        value.get("microsecond", 0))
    if kind == "timedelta":
        return timedelta(seconds=float(value["seconds"]))
    return {k: decode(v) for k, v in value.items()}


def _http_error(response: httpx.Response) -> tuple[str, str]:
    """Tryton's HTTP-level refusals (401 session, 403 method not exposed,
    413 request too large) carry an HTML page, not JSON."""
    code, message = read_error(response)
    return code, " ".join(message.split())[:MAX_MESSAGE]


class TrytonClient:
    """One Tryton database as one user, over ``VendorHttp``.

    ``context`` is what Tryton's own client sends with every call: the
    company to work in, the user's language. Tryton takes it only from the
    caller, so it comes from the connection's options (``company``) or, when
    they do not name one, from the user's preferences, asked once per session.
    """

    def __init__(self, base_url: str, database: str, *, username: str, password: str,
                 company: int | None = None, language: str = "en",
                 rate_limit: RateLimit | None = None, timeout: float = 30.0,
                 concurrency: int = 4, transport: httpx.BaseTransport | None = None) -> None:
        self.database = database
        self.username = username
        self._password = password
        self._language = language
        self._company = company
        self._session: str | None = None
        self.user_id: int | None = None
        self._context: dict[str, Any] | None = None
        self._login_lock = threading.Lock()
        self._ids = itertools.count(1)
        self.http = VendorHttp("tryton", base_url, rate_limit=rate_limit or RateLimit(50, 1, 50),
                               authorise=self._authorisation, refresh=self._relogin,
                               read_error=_http_error, concurrency=concurrency,
                               timeout=timeout, max_429_retries=3, transport=transport)

    @property
    def calls(self) -> int:
        """JSON-RPC calls sent so far (logins included), for tests and benchmarks."""
        return self.http.requests_sent

    def close(self) -> None:
        self.http.close()

    # -- the session -----------------------------------------------------------
    def _authorisation(self) -> dict[str, str]:
        return {"Authorization": f"Session {self._session}"} if self._session else {}

    def _relogin(self) -> None:
        self._session = None
        self._login()

    def _login(self) -> None:
        result = self._rpc("common.db.login",
                           [self.username, {"password": self._password}, self._language])
        if not isinstance(result, list) or len(result) < 2:
            raise PermanentError(f"tryton login as {self.username}: unexpected answer {result!r}",
                                 code="TARGET_AUTH")
        self.user_id = int(result[0])
        token = f"{self.username}:{result[0]}:{result[1]}"
        self._session = base64.b64encode(token.encode()).decode()

    def context(self) -> dict[str, Any]:
        with self._login_lock:
            if self._session is None:
                self._login()
            if self._context is None:
                if self._company is not None:
                    self._context = {"company": self._company, "companies": [self._company],
                                     "language": self._language}
                else:
                    prefs = self._rpc("model.res.user.get_preferences", [True, {}])
                    self._context = {k: prefs[k] for k in ("company", "companies", "language",
                                                          "employee", "employees")
                                     if k in prefs}
            return dict(self._context)

    # -- calls -----------------------------------------------------------------
    def call(self, method: str, *params: Any) -> Any:
        """``model.<name>.<method>`` with ``params`` and the session's context."""
        context = self.context()
        return self._rpc(method, [*params, context])

    def _rpc(self, method: str, params: Sequence[Any]) -> Any:
        body = {"method": method, "params": encode(list(params)), "id": next(self._ids)}
        answer = self.http.json("POST", f"/{self.database}/rpc/", method, json=body)
        if not isinstance(answer, dict):
            raise TransientError(f"tryton {method}: not a JSON-RPC answer: {answer!r:.200}",
                                 code="TRYTON_BAD_ANSWER")
        if "error" in answer and answer["error"] is not None:
            raise _error(method, answer["error"])
        return decode(answer.get("result"))

    # -- model helpers -----------------------------------------------------------
    def create(self, model: str, values: Sequence[Mapping[str, Any]]) -> list[int]:
        return [int(i) for i in self.call(f"model.{model}.create", list(values))]

    def write(self, model: str, *pairs: Any) -> None:
        """``write(ids, values, ids2, values2, ...)``: many updates, one call."""
        self.call(f"model.{model}.write", *pairs)

    def delete(self, model: str, ids: Sequence[int]) -> None:
        self.call(f"model.{model}.delete", list(ids))

    def search_read(self, model: str, domain: Sequence[Any], fields: Sequence[str], *,
                    offset: int = 0, limit: int | None = None,
                    order: Sequence[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
        rows = self.call(f"model.{model}.search_read", list(domain), offset, limit,
                         [list(o) for o in order] if order else None, list(fields))
        return list(rows)

    def read(self, model: str, ids: Sequence[int], fields: Sequence[str]) -> list[dict[str, Any]]:
        return list(self.call(f"model.{model}.read", list(ids), list(fields)))

    def button(self, model: str, name: str, ids: Sequence[int]) -> None:
        self.call(f"model.{model}.{name}", list(ids))


def _error(method: str, error: Any) -> Exception:
    """One JSON-RPC ``error`` as the exception the caller should see."""
    if isinstance(error, list) and len(error) == 2 and isinstance(error[1], list):
        exception, args = str(error[0]), error[1]
        if exception in _TRANSIENT:
            return TransientError(f"tryton {method}: {exception}: {args}"[:MAX_MESSAGE],
                                  code=f"TRYTON_{_snake(exception).upper()}")
        if exception == "LoginException" or (exception == "UserError" and method ==
                                             "common.db.login"):
            return PermanentError(f"tryton {method}: the login was refused", code="TARGET_AUTH")
        if exception == "UserWarning":
            # args: [warning name, message, description]
            return TrytonError(exception, str(args[1] if len(args) > 1 else args)[:MAX_MESSAGE],
                               method=method, warning=str(args[0]) if args else None)
        message = str(args[0]) if args else exception
        return TrytonError(exception, message[:MAX_MESSAGE], method=method)
    text = str(error[0]) if isinstance(error, list) and error else str(error)
    if any(mark in str(error) for mark in _BUSY_MARKS):
        return TransientError(f"tryton {method}: the database was busy: {text}"[:MAX_MESSAGE],
                              code="TRYTON_BUSY")
    return TrytonError("ServerError", text[:MAX_MESSAGE], method=method)
