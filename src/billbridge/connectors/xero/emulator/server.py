"""A Xero emulator: the accounting API's real paths under ``/api.xro/2.0``
and the identity server's token endpoint, with Xero's door around them.

- Auth: ``Authorization: Bearer`` with 30-minute access tokens (401
  ``TokenExpired``), refresh tokens that rotate on every use (the replaced
  one still works for 30 minutes, so a refresh whose answer was lost can be
  repeated), and the ``xero-tenant-id`` header (403 without the right one).
- Limits per tenant: 60 calls in any rolling minute, 5,000 a day, 5 in
  flight; past one, 429 with ``Retry-After`` and ``X-Rate-Limit-Problem``
  (``minute``, ``day``, ``concurrent``). Every answer carries
  ``X-MinLimit-Remaining``, ``X-DayLimit-Remaining`` and
  ``X-AppMinLimit-Remaining``.
- ``Idempotency-Key`` (at most 128 characters): a repeat answers the first
  answer and writes nothing.
- ``summarizeErrors=false``: 200 with per-element ``ValidationErrors``;
  otherwise a 400 ``ValidationException`` listing the refused elements (the
  valid ones are saved, as Xero does).
- Answers in Xero's JSON: the ``{"Id", "Status", "ProviderName",
  "DateTimeUTC", <collection>}`` envelope, ``/Date(ms+0000)/`` dates, JSON
  numbers for money.

The books and Xero's rules for them are in ``organisation.py`` (beside this module); fault
injection (5xx, 429, timeouts, lost acknowledgements) comes from the base
class. Time for the limits comes from ``clock`` so tests can run on a
manual clock.
"""

from __future__ import annotations

import base64
import email.utils
import math
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from billbridge.connectors.xero.emulator.organisation import Invalid, Organisation
from billbridge.connectors.xero.emulator.query import WhereError, where
from billbridge.emulation.server import (
    ADMIN_PREFIX,
    DecimalResponse,
    EmulatorServer,
    Request,
    Response,
)

API = "/api.xro/2.0"
TOKEN_PATH = "/connect/token"
DEFAULT_TENANT = "9f6c7a3e-2b1d-4e5f-8a9b-0c1d2e3f4a5b"
TOKEN_SECONDS = 1800
REFRESH_GRACE_SECONDS = 1800  # a rotated refresh token still works this long
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
IDEMPOTENCY_KEY_MAX = 128
Save = Callable[[Mapping[str, Any], str | None], dict[str, Any]]


def wire(value: Any) -> Any:
    """A stored record as Xero writes it: dates as ``/Date(ms+0000)/``; keys
    starting with ``_`` are the emulator's own. Money stays Decimal until
    ``DecimalResponse`` writes it as a JSON number."""
    if isinstance(value, Mapping):  # Xero leaves out fields that have no value
        return {k: wire(v) for k, v in value.items()
                if not str(k).startswith("_") and v is not None}
    if isinstance(value, list):
        return [wire(v) for v in value]
    if isinstance(value, datetime):
        return f"/Date({int(value.timestamp() * 1000)}+0000)/"
    if isinstance(value, date):
        return wire(datetime(value.year, value.month, value.day, tzinfo=UTC))
    return value


def _sortable(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def problem(status: int, title: str, detail: str) -> Response:
    """Xero's ProblemDetails body, used by the door (401, 403, 429, 5xx)."""
    return Response(status, {"Type": None, "Title": title, "Status": status, "Detail": detail,
                             "Instance": str(uuid.uuid4()), "Extensions": {}})


def validation(elements: list[dict[str, Any]], message: str = "A validation exception occurred"
               ) -> Response:
    return Response(400, {"ErrorNumber": 10, "Type": "ValidationException", "Message": message,
                          "Elements": elements})


def _since(value: str | None) -> datetime | None:
    """``If-Modified-Since``: ISO 8601 (UTC when no offset) or an HTTP date."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class XeroEmulator(EmulatorServer):
    def __init__(self, *, port: int = 0, tenant_id: str = DEFAULT_TENANT,
                 access_token: str = "xero-access-token",
                 refresh_token: str = "xero-refresh-token", client_id: str = "xero-client-id",
                 client_secret: str = "xero-client-secret", minute_limit: int = 60,
                 daily_limit: int = 5000, concurrent_limit: int = 5,
                 app_minute_limit: int = 10_000, latency: float = 0.0,
                 clock: Callable[[], float] | None = None,
                 now: Callable[[], datetime] | None = None,
                 organisation: Organisation | None = None) -> None:
        super().__init__(port=port, token=None)  # auth is Xero-shaped, in dispatch
        self.clock = clock or time.monotonic
        self.org = organisation or Organisation(now=now)
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.minute_limit, self.daily_limit = minute_limit, daily_limit
        self.concurrent_limit, self.app_minute_limit = concurrent_limit, app_minute_limit
        self.latency = latency
        self.access_tokens: dict[str, float] = {access_token: self.clock() + TOKEN_SECONDS}
        self.refresh_token = refresh_token
        self._replaced: tuple[str, float] | None = None  # the last rotated-out refresh token
        self.calls: list[tuple[str, str, int]] = []  # (method, path, status) of API calls
        self.idempotent_replays = 0
        self._minute: deque[float] = deque()
        self._day: deque[float] = deque()
        self._in_flight = 0
        self._replies: dict[str, Response] = {}
        self.route("POST", TOKEN_PATH, self._token)
        self.route("GET", f"{API}/Organisation", self._organisation)
        for name, save, records in (
                ("Contacts", self.org.save_contact, self.org.contacts),
                ("Invoices", self.org.save_invoice, self.org.invoices),
                ("ManualJournals", self.org.save_journal, self.org.journals)):
            self._collection(name, save, records)
        self.route("GET", f"{API}/Payments", lambda r: self._list(
            r, "Payments", self.org.payments))
        self.route("GET", f"{API}/TrackingCategories", self._categories)
        self.route("PUT", f"{API}/TrackingCategories", self._new_category)
        self.route("GET", f"{API}/TrackingCategories/{{id}}", self._categories)
        self.route("PUT", f"{API}/TrackingCategories/{{id}}/Options", self._option)
        self.route("POST", f"{API}/TrackingCategories/{{id}}/Options/{{option}}", self._option)

    def _collection(self, name: str, save: Callable[..., dict[str, Any]],
                    records: dict[str, dict[str, Any]]) -> None:
        self.route("GET", f"{API}/{name}", lambda r: self._list(r, name, records))
        self.route("GET", f"{API}/{name}/{{id}}", lambda r: self._one(r, name, records))
        self.route("PUT", f"{API}/{name}", lambda r: self._write(
            r, name, lambda item, app: save(item, app, update=False)))
        self.route("POST", f"{API}/{name}", lambda r: self._write(
            r, name, lambda item, app: save(item, app, update=True)))

    # -- helpers for tests and the demo ---------------------------------------------
    def contacts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [wire(c) for c in self.org.contacts.values()]

    def invoices(self) -> list[dict[str, Any]]:
        with self.lock:
            return [wire(i) for i in self.org.invoices.values()]

    def journals(self) -> list[dict[str, Any]]:
        with self.lock:
            return [wire(j) for j in self.org.journals.values()]

    def tracking_options(self, category: str = "Project") -> list[dict[str, Any]]:
        with self.lock:
            return [dict(o) for c in self.org.categories.values() if c["Name"] == category
                    for o in c["Options"]]

    def authorise(self, invoice_id: str) -> None:
        """An accountant approves a draft in Xero."""
        with self.lock:
            self.org.save_invoice({"InvoiceID": invoice_id, "Status": "AUTHORISED"}, None,
                                  update=True)

    def pay(self, invoice_id: str, amount: Decimal, on: date | None = None) -> str:
        with self.lock:
            return str(self.org.pay(invoice_id, amount, on)["PaymentID"])

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens = {t: 0.0 for t in self.access_tokens}

    def api_calls(self, method: str | None = None, prefix: str = API) -> int:
        with self.lock:
            return sum(1 for m, p, _s in self.calls
                       if p.startswith(prefix) and method in (None, m))

    # -- Xero's door ------------------------------------------------------------------
    def dispatch(self, request: Request, *, drop: Callable[[], None]) -> Response | None:
        if request.path.startswith(ADMIN_PREFIX) or request.path == TOKEN_PATH:
            return super().dispatch(request, drop=drop)
        now = self.clock()
        with self.lock:
            refused = self._refusal(request, now)
            if refused is None:
                self._minute.append(now)
                self._day.append(now)
                self._in_flight += 1
        response: Response | None = refused
        if refused is None:
            try:
                if self.latency:
                    time.sleep(self.latency)
                response = super().dispatch(request, drop=drop)
            finally:
                with self.lock:
                    self._in_flight -= 1
        with self.lock:
            self.calls.append((request.method, request.path, 0 if response is None
                               else response.status))
            if response is None:
                return None  # the lost acknowledgement: applied, never answered
            response = self._xero_shaped(response)
            response.headers.update(self._limit_headers(now))
        return DecimalResponse(response.status, response.body, response.headers)

    def _refusal(self, request: Request, now: float) -> Response | None:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if token not in self.access_tokens:
            return problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        if self.access_tokens[token] <= now:
            expired = datetime.now(UTC).strftime("%m/%d/%Y %H:%M:%S")
            return problem(401, "Unauthorized", f"TokenExpired: token expired at {expired}")
        if request.headers.get("xero-tenant-id") != self.tenant_id:
            return problem(403, "Forbidden", "AuthenticationUnsuccessful")
        for window, span in ((self._minute, 60.0), (self._day, 86_400.0)):
            while window and now - window[0] >= span:
                window.popleft()
        if len(self._day) >= self.daily_limit:
            return self._too_many("day", 86_400.0 - (now - self._day[0]))
        if len(self._minute) >= self.minute_limit:
            return self._too_many("minute", 60.0 - (now - self._minute[0]))
        if self._in_flight >= self.concurrent_limit:
            return self._too_many("concurrent", 1.0)
        return None

    @staticmethod
    def _too_many(limit: str, wait: float) -> Response:
        refused = problem(429, "Too Many Requests", f"The {limit} rate limit was exceeded")
        refused.headers.update({"Retry-After": str(max(1, math.ceil(wait))),
                                "X-Rate-Limit-Problem": limit})
        return refused

    def _limit_headers(self, now: float) -> dict[str, str]:
        minute = sum(1 for t in self._minute if now - t < 60.0)
        return {"X-MinLimit-Remaining": str(max(0, self.minute_limit - minute)),
                "X-DayLimit-Remaining": str(max(0, self.daily_limit - len(self._day))),
                "X-AppMinLimit-Remaining": str(max(0, self.app_minute_limit - minute))}

    @staticmethod
    def _xero_shaped(response: Response) -> Response:
        """The base class's ``{"error": ...}`` answers (faults, unknown routes)
        in the shapes Xero uses."""
        body = response.body
        if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
            return response
        if response.status == 404:
            return Response(404, b"The resource you're looking for cannot be found",
                            {"Content-Type": "text/plain"})
        if response.status == 429:
            shaped = XeroEmulator._too_many("minute", 1.0)
            if "Retry-After" in response.headers:
                shaped.headers["Retry-After"] = response.headers["Retry-After"]
            return shaped
        shaped = problem(response.status, "An error occurred", str(body["error"].get("message")))
        shaped.headers.update(response.headers)
        return shaped

    # -- identity server ----------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        if (client_id, secret) != (self.client_id, self.client_secret):
            return Response(400, {"error": "invalid_client"})
        with self.lock:
            given, now = form.get("refresh_token"), self.clock()
            in_grace = self._replaced is not None and given == self._replaced[0] and \
                now < self._replaced[1]
            if form.get("grant_type") != "refresh_token" or \
                    (given != self.refresh_token and not in_grace):
                return Response(400, {"error": "invalid_grant"})
            if not in_grace:
                self._replaced = (self.refresh_token, now + REFRESH_GRACE_SECONDS)
            access, self.refresh_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            self.access_tokens[access] = self.clock() + TOKEN_SECONDS
            return Response(200, {"access_token": access, "refresh_token": self.refresh_token,
                                  "expires_in": TOKEN_SECONDS, "token_type": "Bearer",
                                  "scope": "accounting.transactions accounting.contacts "
                                           "accounting.settings offline_access"})

    # -- the API ------------------------------------------------------------------------
    def _envelope(self, name: str, items: list[Any], **extra: Any) -> Response:
        return Response(200, {"Id": str(uuid.uuid4()), "Status": "OK",
                              "ProviderName": "billbridge Xero emulator",
                              "DateTimeUTC": wire(datetime.now(UTC)), **extra, name: items})

    def _organisation(self, _request: Request) -> Response:
        org = self.org
        return self._envelope("Organisations", [{
            "OrganisationID": org.organisation_id, "Name": org.name,
            "BaseCurrency": org.base_currency, "OrganisationStatus": "ACTIVE",
            "CountryCode": "US", "IsDemoCompany": False}])

    def _app(self, request: Request) -> str | None:
        return self.client_id if request.headers.get("authorization") else None

    def _write(self, request: Request, name: str, save: Save) -> Response:
        key = request.headers.get("idempotency-key")
        if key is not None and len(key) > IDEMPOTENCY_KEY_MAX:
            return validation([], f"The Idempotency-Key must be at most "
                                  f"{IDEMPOTENCY_KEY_MAX} characters")
        with self.lock:
            if key and key in self._replies:
                self.idempotent_replays += 1
                return self._replies[key]
            try:
                body = request.json()
            except ValueError:
                return validation([], "The request body is not valid JSON")
            items = body.get(name) if isinstance(body, dict) and name in body else [body]
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                return validation([], f"The request body must be {{'{name}': [...]}}")
            answered, refused = [], []
            for item in items:
                try:
                    answered.append({**wire(save(item, self._app(request))),
                                     "StatusAttributeString": "OK"})
                except Invalid as exc:
                    element = {**wire(item), "StatusAttributeString": "ERROR",
                               "HasErrors": True, "HasValidationErrors": True,
                               "ValidationErrors": [{"Message": m} for m in exc.messages]}
                    answered.append(element)
                    refused.append(element)
            summarised = (request.arg("summarizeErrors") or "true").lower() != "false"
            response = validation(refused) if refused and summarised else \
                self._envelope(name, answered)
            if key:
                self._replies[key] = response
            return response

    def _one(self, request: Request, name: str, records: dict[str, dict[str, Any]]
             ) -> Response:
        with self.lock:
            found = records.get(request.params["id"]) or next(
                (r for r in records.values() if name == "Invoices"
                 and r["InvoiceNumber"] == request.params["id"]), None)
            if found is None:
                return Response(404, {"error": {"code": "NOT_FOUND", "message": "not found"}})
            return self._envelope(name, [wire(found)])

    def _list(self, request: Request, name: str, records: dict[str, dict[str, Any]]
              ) -> Response:
        try:
            since = _since(request.headers.get("if-modified-since"))
            matches = where(request.arg("where") or "") if request.arg("where") else None
            page = int(request.arg("page") or 0)
            size = min(MAX_PAGE_SIZE, int(request.arg("pageSize") or PAGE_SIZE))
        except (WhereError, ValueError, TypeError) as exc:
            return validation([], str(exc))
        lists = {param: {v.strip().casefold() for v in (request.arg(param) or "").split(",")
                         if v.strip()} for param in ("IDs", "InvoiceNumbers", "Statuses",
                                                     "ContactIDs")}
        id_field = {"Contacts": "ContactID", "Invoices": "InvoiceID",
                    "ManualJournals": "ManualJournalID", "Payments": "PaymentID"}[name]
        mine = (request.arg("createdByMyApp") or "").lower() == "true"
        archived = (request.arg("includeArchived") or "").lower() == "true"
        with self.lock:
            rows = [r for r in records.values()
                    if (since is None or r["UpdatedDateUTC"] >= since)
                    and (not mine or r.get("_app") == self._app(request))
                    and (archived or name != "Contacts" or r["ContactStatus"] == "ACTIVE")
                    and (not lists["IDs"] or r[id_field].casefold() in lists["IDs"])
                    and (not lists["InvoiceNumbers"]
                         or str(r.get("InvoiceNumber")).casefold() in lists["InvoiceNumbers"])
                    and (not lists["Statuses"] or str(r.get("Status")).casefold()
                         in lists["Statuses"])
                    and (not lists["ContactIDs"] or str((r.get("Contact") or {}).get(
                        "ContactID")).casefold() in lists["ContactIDs"])]
            try:
                rows = [r for r in rows if matches is None or matches(r)]
            except WhereError as exc:
                return validation([], str(exc))
            order = (request.arg("order") or "").split()
            if order:
                rows.sort(key=lambda r: _sortable(r.get(order[0])),
                          reverse=len(order) > 1 and order[1].upper() == "DESC")
            extra: dict[str, Any] = {}
            if page:
                extra["pagination"] = {"page": page, "pageSize": size,
                                       "pageCount": max(1, -(-len(rows) // size)),
                                       "itemCount": len(rows)}
                rows = rows[(page - 1) * size: page * size]
            shown = [wire(r) for r in rows]
            if not page:  # Xero lists an invoice's or a journal's lines only when paging
                shown = [{k: v for k, v in r.items() if k not in ("LineItems", "JournalLines")}
                         for r in shown]
            return self._envelope(name, shown, **extra)

    def _categories(self, request: Request) -> Response:
        archived = (request.arg("includeArchived") or "").lower() == "true"
        try:
            matches = where(request.arg("where") or "") if request.arg("where") else None
        except WhereError as exc:
            return validation([], str(exc))
        with self.lock:
            chosen = [c for c in self.org.categories.values()
                      if request.params.get("id") in (None, c["TrackingCategoryID"])
                      and (archived or c["Status"] == "ACTIVE")
                      and (matches is None or matches(c))]
            if request.params.get("id") and not chosen:
                return Response(404, {"error": {"code": "NOT_FOUND", "message": "not found"}})
            shown = [{**c, "Options": [dict(o) for o in c["Options"]
                                       if archived or o["Status"] == "ACTIVE"]}
                     for c in chosen]
            return self._envelope("TrackingCategories", shown)

    def _new_category(self, request: Request) -> Response:
        return self._write(request, "TrackingCategories",
                           lambda item, _app: self.org.save_category(item))

    def _option(self, request: Request) -> Response:
        category, option = request.params["id"], request.params.get("option")
        if category not in self.org.categories:
            return Response(404, {"error": {"code": "NOT_FOUND", "message": "not found"}})

        def save(item: Mapping[str, Any], _app: str | None) -> dict[str, Any]:
            try:
                return self.org.save_option(category, item, option)
            except LookupError:
                raise Invalid([f"The tracking option {option} could not be found"]) from None
        return self._write(request, "Options", save)
