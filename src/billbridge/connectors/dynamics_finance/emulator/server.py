"""A Dynamics 365 Finance environment on 127.0.0.1: ``/data`` with
``CustomersV3``, ``Projects``, ``ProjectHourJournalLines``,
``FreeTextInvoiceHeaders``/``FreeTextInvoiceLines`` and
``CustomerPaymentJournalLines``; key segments that must name every key
field; ``PATCH`` upserts; ``cross-company=true`` (else only the user's default
company); ``$filter``/``$orderby``/``$select``/``$top``/``$skip`` and
server-driven paging by ``@odata.nextLink``; ``$batch`` with change sets (at
most 5,000 operations, all or none per change set); the service protection
limits answered with 429, ``Retry-After`` and Finance's messages; an Entra
ID-like token endpoint (client credentials); and the shared fault injection.

What it leaves out is listed in docs/connectors/dynamics-finance.md."""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from billbridge.connectors.dynamics_finance.emulator.company import (
    COMPANIES,
    CUSTOMER_GROUPS,
    CUSTOMERS,
    DEFAULT_COMPANY,
    HOUR_CATEGORIES,
    LINE_PROPERTIES,
    MAIN_ACCOUNTS,
    PROJECTS,
)
from billbridge.connectors.dynamics_finance.emulator.query import (
    ODataError,
    normal_datetime,
    ordered,
    parse_filter,
    parse_key,
)
from billbridge.emulation import odata
from billbridge.emulation.limits import admit
from billbridge.emulation.server import EmulatorServer, Request, Response

DATA = "/data"
MAX_PAGE = 10_000
MAX_BATCH = 5000
STAMP = "ModifiedDateTime"
REQUESTS_MESSAGE = ("Number of requests exeeded the limit of {limit} over the time window "
                    "of {window} seconds.")
CONCURRENCY_MESSAGE = "Number of concurrent requests exceeded the limit of {limit}."


@dataclass(frozen=True)
class Entity:
    key: tuple[str, ...]
    required: tuple[str, ...] = ()
    numbered: bool = False  # the last key field is a line number Finance assigns


ENTITIES: dict[str, Entity] = {
    "CustomersV3": Entity(("dataAreaId", "CustomerAccount"),
                          ("OrganizationName", "CustomerGroupId", "SalesCurrencyCode")),
    "Projects": Entity(("dataAreaId", "ProjectID"), ("ProjectName",)),
    "ProjectHourJournalLines": Entity(("dataAreaId", "JournalBatchNumber", "LineNumber"),
                                      ("ProjectID", "ProjectDate", "Hours", "CategoryId",
                                       "LinePropertyId"), numbered=True),
    "FreeTextInvoiceHeaders": Entity(("dataAreaId", "InvoiceIdentifier"),
                                     ("CustomerAccount", "CurrencyCode")),
    "FreeTextInvoiceLines": Entity(("dataAreaId", "InvoiceIdentifier", "LineNumber"),
                                   ("Quantity", "UnitPrice", "MainAccountDisplayValue")),
    "CustomerPaymentJournalLines": Entity(("dataAreaId", "JournalBatchNumber", "LineNumber"),
                                          ("CreditAmount",), numbered=True),
}
Key = tuple[Any, ...]


class WriteRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def odata_error(status: int, message: str, inner: str | None = None) -> Response:
    error: dict[str, Any] = {"code": "", "message": message}
    if inner:
        error["innererror"] = {"message": inner, "type": "Microsoft.Dynamics.Platform."
                               "Integration.Services.OData.AxODataWriteException"}
    return Response(status, {"error": error}, {"OData-Version": "4.0"})


def _dumps(body: Any) -> bytes:
    """JSON with each Decimal written with its own digits (Edm.Decimal)."""
    def encode(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: encode(v) for k, v in item.items()}
        if isinstance(item, list):
            return [encode(v) for v in item]
        if isinstance(item, Decimal):
            return f"\x00dec:{item}"
        return item
    return re.sub(r'"\\u0000dec:([^"]+)"', r"\1", json.dumps(encode(body))).encode()


class FinanceEmulator(EmulatorServer):
    """One finance and operations environment. Rows live in
    ``rows[entity][key tuple]``; every write stamps ``ModifiedDateTime``."""

    def __init__(self, *, port: int = 0, company: bool = True,
                 tenant: str = "billbridge-tenant", client_id: str = "billbridge-app",
                 client_secret: str = "finance-secret", token_lifetime: float = 3600.0,
                 default_company: str = DEFAULT_COMPANY, page_size: int = MAX_PAGE,
                 requests_limit: int = 6000, concurrency_limit: int = 52,
                 window_seconds: float = 300.0, patch_creates: bool = True,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(port=port, token=None)
        self.tenant, self.client_id, self.client_secret = tenant, client_id, client_secret
        self.token_lifetime = token_lifetime
        self.default_company = default_company
        self.page_size = page_size
        self.requests_limit, self.concurrency_limit = requests_limit, concurrency_limit
        self.window_seconds = window_seconds
        self.patch_creates = patch_creates
        self.clock = clock or time.monotonic
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.rows: dict[str, dict[Key, dict[str, Any]]] = {name: {} for name in ENTITIES}
        self.valid_tokens: dict[str, float] = {}
        self.calls: list[tuple[str, str, int]] = []  # (method, path, status) of /data calls
        self.batches: list[int] = []  # operations in each $batch received
        self._journal: list[tuple[str, Key, dict[str, Any] | None]] | None = None
        self._lines: dict[Key, set[Key]] = {}  # an invoice's line keys
        self._numbers: dict[Key, Decimal] = {}  # (entity, company, journal) → last line
        self._limit_lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._in_flight = 0
        self.route("POST", "/{tenant}/oauth2/v2.0/token", self._token)
        self.route("GET", DATA + "/{resource}", self._api(self._get))
        self.route("PATCH", DATA + "/{resource}", self._api(self._patch))
        self.route("POST", DATA + "/{resource}", self._api(self._post))
        self.route("DELETE", DATA + "/{resource}", self._api(self._delete))
        if company:
            for row in CUSTOMERS:
                self.put("CustomersV3", row)
            for row in PROJECTS:
                self.put("Projects", row)

    @property
    def token_url(self) -> str:
        return f"{self.url}/{self.tenant}/oauth2/v2.0/token"

    # -- state ---------------------------------------------------------------------
    def _stamp(self) -> str:
        return normal_datetime(self.now().astimezone(UTC).isoformat())

    def put(self, entity: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Create or merge a row (its key fields in ``fields``); a copy back."""
        spec = ENTITIES[entity]
        with self.lock:
            key = tuple(fields[k] for k in spec.key)
            previous = self.rows[entity].get(key)
            if self._journal is not None:
                self._journal.append((entity, key, copy.deepcopy(previous)))
            row = {**(previous or {}), **fields, STAMP: self._stamp()}
            self.rows[entity][key] = row
            if entity == "FreeTextInvoiceHeaders" and previous is None:
                row.setdefault("IsPosted", "No")
                row.setdefault("TotalInvoiceAmount", Decimal(0))
            if entity == "FreeTextInvoiceLines":
                self._lines.setdefault(key[:2], set()).add(key)
                self._total(row["dataAreaId"], row["InvoiceIdentifier"])
            if ENTITIES[entity].numbered:
                self._numbers[(entity, *key[:2])] = max(
                    self._numbers.get((entity, *key[:2]), Decimal(0)), Decimal(key[2]))
            return dict(row)

    def remove(self, entity: str, key: Key) -> None:
        with self.lock:
            previous = self.rows[entity].pop(key)
            if self._journal is not None:
                self._journal.append((entity, key, previous))

    def _total(self, company: str, invoice: str) -> None:
        header = self.rows["FreeTextInvoiceHeaders"].get((company, invoice))
        if header is None:
            return
        lines = self._lines.get((company, invoice), set())
        header["TotalInvoiceAmount"] = sum(
            (Decimal(str(self.rows["FreeTextInvoiceLines"][k].get("LineAmount") or 0))
             for k in lines if k in self.rows["FreeTextInvoiceLines"]), Decimal(0))

    def all(self, entity: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(r) for r in self.rows[entity].values()]

    def post_invoice(self, company: str, invoice: str) -> None:
        """The accountant posts the free-text invoice in Finance."""
        with self.lock:
            header = self.rows["FreeTextInvoiceHeaders"][(company, invoice)]
            self.put("FreeTextInvoiceHeaders", {**header, "IsPosted": "Yes"})

    def pay(self, company: str, invoice: str, amount: Decimal | str,
            journal: str = "PAY-0001") -> dict[str, Any]:
        """A customer payment journal line marked against ``invoice``."""
        with self.lock:
            header = self.rows["FreeTextInvoiceHeaders"][(company, invoice)]
            return self.put("CustomerPaymentJournalLines", {
                "dataAreaId": company, "JournalBatchNumber": journal,
                "LineNumber": self._next_line("CustomerPaymentJournalLines", company, journal),
                "AccountDisplayValue": header["CustomerAccount"], "MarkedInvoice": invoice,
                "CreditAmount": Decimal(str(amount)), "CurrencyCode": header["CurrencyCode"],
                "TransactionDate": self.now().date().isoformat()})

    def _next_line(self, entity: str, company: str, journal: str) -> Decimal:
        """Line numbers only grow, as Finance's do: a deleted line's is not reused."""
        return self._numbers.get((entity, company, journal), Decimal(0)) + 1

    def api_calls(self, method: str | None = None, prefix: str = DATA) -> int:
        with self.lock:
            return sum(1 for m, p, _s in self.calls
                       if p.startswith(prefix) and (method is None or m == method))

    # -- token ---------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if request.params.get("tenant") != self.tenant:
            return Response(400, {"error": "invalid_request", "error_description":
                                  f"AADSTS90002: Tenant '{request.params.get('tenant')}' "
                                  "not found."})
        if form.get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type"})
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id,
                                                                  self.client_secret):
            return Response(401, {"error": "invalid_client", "error_description":
                                  "AADSTS7000215: Invalid client secret provided."})
        if not str(form.get("scope") or "").endswith("/.default"):
            return Response(400, {"error": "invalid_scope"})
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.valid_tokens[token] = self.clock() + self.token_lifetime
        return Response(200, {"token_type": "Bearer", "expires_in": int(self.token_lifetime),
                              "ext_expires_in": int(self.token_lifetime),
                              "access_token": token})

    # -- the API's door: token, limits, record of the call -------------------------
    def _api(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def door(request: Request) -> Response:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            with self.lock:
                expires = self.valid_tokens.get(token)
            if expires is None or expires <= self.clock():
                return self._log(request, Response(401, b"", {"WWW-Authenticate": "Bearer"}))
            refused = self._admit(token)
            if refused is not None:
                return self._log(request, refused)
            try:
                return self._log(request, handler(request))
            finally:
                with self._limit_lock:
                    self._in_flight -= 1
        return door

    def _admit(self, token: str) -> Response | None:
        with self._limit_lock:
            if self._in_flight >= self.concurrency_limit:
                return Response(429, {"error": {"code": "", "message": CONCURRENCY_MESSAGE
                                                .format(limit=self.concurrency_limit)}},
                                {"Retry-After": "1"})
            window = self._windows.setdefault(token, deque())
            wait = admit(window, self.requests_limit, self.window_seconds, self.clock())
            if wait is not None:
                return Response(429, {"error": {"code": "", "message": REQUESTS_MESSAGE.format(
                    limit=self.requests_limit, window=int(self.window_seconds))}},
                    {"Retry-After": str(max(1, int(wait + 0.999)))})
            self._in_flight += 1
            return None

    def _log(self, request: Request, response: Response) -> Response:
        with self.lock:
            self.calls.append((request.method, request.path, response.status))
        return response

    # -- reads -----------------------------------------------------------------------
    def _entity(self, resource: str) -> tuple[str, dict[str, Any] | None]:
        name, key = parse_key(unquote(resource))
        if name not in ENTITIES:
            raise WriteRefused(404, f"Resource not found for the segment '{name}'.")
        if key is not None and set(key) != set(ENTITIES[name].key):
            raise WriteRefused(400, f"The key of '{name}' is "
                               f"({', '.join(ENTITIES[name].key)}): all key fields must be "
                               "supplied")
        return name, key

    def _key(self, name: str, key: Mapping[str, Any]) -> Key:
        return tuple(key[k] for k in ENTITIES[name].key)

    def _get(self, request: Request) -> Response:
        try:
            name, key = self._entity(request.params["resource"])
            with self.lock:
                if key is not None:
                    row = self.rows[name].get(self._key(name, key))
                    if row is None:
                        return odata_error(404, "No resources were found when selecting for "
                                           "update.")
                    return Response(200, _dumps(dict(row)))
                return self._query(request, name)
        except WriteRefused as exc:
            return odata_error(exc.status, str(exc))
        except ODataError as exc:
            return odata_error(400, str(exc))

    def _query(self, request: Request, name: str) -> Response:
        every = request.arg("cross-company", "false") == "true"
        predicate = parse_filter(request.arg("$filter"))
        rows = [r for r in self.rows[name].values()
                if (every or r.get("dataAreaId") == self.default_company) and predicate(r)]
        rows = ordered(rows, odata.parse_orderby(request.arg("$orderby")) or
                       [(k, False) for k in ENTITIES[name].key])
        skip = int(request.arg("$skip") or 0)
        top = request.arg("$top")
        wanted = len(rows) - skip if top is None else min(int(top), len(rows) - skip)
        asked = odata.max_page_size(request.headers.get("prefer", ""), MAX_PAGE)
        page = max(1, min(self.page_size, asked or MAX_PAGE, MAX_PAGE))
        taken = rows[skip:skip + min(page, max(0, wanted))]
        columns = odata.selected(request.arg("$select"))
        body: dict[str, Any] = {
            "@odata.context": f"{self.url}{DATA}/$metadata#{name}",
            "value": [odata.select(r, columns) for r in taken]}
        if wanted > page:
            moved = {"$skip": str(skip + page)}
            if top is not None:
                moved["$top"] = str(wanted - page)
            body["@odata.nextLink"] = odata.next_link(
                f"{self.url}{DATA}/{name}", request.query, **moved)
        return Response(200, _dumps(body), {"OData-Version": "4.0"})

    # -- writes ----------------------------------------------------------------------
    def _validate(self, name: str, row: Mapping[str, Any]) -> None:
        missing = [f for f in ENTITIES[name].required if row.get(f) in (None, "")]
        company = row.get("dataAreaId")
        problems = [f"Field '{f}' must be filled in." for f in missing]
        if company not in COMPANIES:
            problems.append(f"Company '{company}' does not exist.")
        if name == "CustomersV3" and row.get("CustomerGroupId") not in \
                CUSTOMER_GROUPS.get(str(company), ()):
            problems.append(f"Customer group '{row.get('CustomerGroupId')}' does not exist.")
        if name in ("Projects", "FreeTextInvoiceHeaders") and row.get("CustomerAccount") and \
                (company, row["CustomerAccount"]) not in self.rows["CustomersV3"]:
            problems.append(f"Customer account '{row['CustomerAccount']}' does not exist.")
        if name == "ProjectHourJournalLines":
            if (company, row.get("ProjectID")) not in self.rows["Projects"]:
                problems.append(f"Project ID '{row.get('ProjectID')}' does not exist.")
            if row.get("CategoryId") not in HOUR_CATEGORIES:
                problems.append(f"Category '{row.get('CategoryId')}' does not exist.")
            if row.get("LinePropertyId") not in LINE_PROPERTIES:
                problems.append(f"Line property '{row.get('LinePropertyId')}' does not exist.")
        if name == "FreeTextInvoiceLines":
            if (company, row.get("InvoiceIdentifier")) not in self.rows["FreeTextInvoiceHeaders"]:
                problems.append(f"Invoice '{row.get('InvoiceIdentifier')}' does not exist.")
            if row.get("MainAccountDisplayValue") not in MAIN_ACCOUNTS:
                problems.append(f"Main account '{row.get('MainAccountDisplayValue')}' does not "
                                "exist.")
        if problems:
            raise WriteRefused(400, f"Write failed for table row of type '{name}'. Infolog: "
                               + " ".join(problems))

    def _body(self, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw or b"{}", parse_float=Decimal, parse_int=Decimal)
        except ValueError:
            raise WriteRefused(400, "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise WriteRefused(400, "The request body must be a JSON object.")
        return body

    def _write(self, method: str, resource: str, raw: bytes) -> tuple[int, dict[str, Any] | None]:
        """One write; (status, row answered). Raises ``WriteRefused``."""
        name, key = self._entity(resource)
        body = self._body(raw)
        spec = ENTITIES[name]
        with self.lock:
            if method == "DELETE":
                if key is None or self._key(name, key) not in self.rows[name]:
                    raise WriteRefused(404, "No resources were found when selecting for update.")
                self.remove(name, self._key(name, key))
                return 204, None
            if method == "PATCH":
                if key is None:
                    raise WriteRefused(400, "PATCH needs the entity's key in the URL.")
                existing = self.rows[name].get(self._key(name, key))
                if existing is None and not self.patch_creates:
                    raise WriteRefused(404, "No resources were found when selecting for update.")
                row = {**(existing or {}), **body, **key}
                self._validate(name, row)
                self.put(name, row)
                return 204, None
            if key is not None:
                raise WriteRefused(400, "POST goes to the entity collection, not a key.")
            if spec.numbered and body.get(spec.key[-1]) in (None, 0):
                body[spec.key[-1]] = self._next_line(name, str(body.get("dataAreaId")),
                                                     str(body.get(spec.key[1])))
            empty = [k for k in spec.key if body.get(k) in (None, "")]
            if empty:
                raise WriteRefused(400, f"Field '{empty[0]}' must be filled in.")
            if self._key(name, body) in self.rows[name]:
                raise WriteRefused(400, f"Cannot create a record in '{name}'. The record "
                                   "already exists.")
            self._validate(name, body)
            return 201, self.put(name, body)

    def _patch(self, request: Request) -> Response:
        return self._single(request)

    def _delete(self, request: Request) -> Response:
        return self._single(request)

    def _post(self, request: Request) -> Response:
        if request.params["resource"] == "$batch":
            return self._batch(request)
        return self._single(request)

    def _single(self, request: Request) -> Response:
        try:
            status, row = self._write(request.method, request.params["resource"], request.body)
        except WriteRefused as exc:
            return odata_error(exc.status, "An error has occurred.", str(exc))
        except ODataError as exc:
            return odata_error(400, str(exc))
        return Response(status, _dumps(row) if row is not None else b"", {"OData-Version": "4.0"})

    # -- $batch ------------------------------------------------------------------------
    def _batch(self, request: Request) -> Response:
        try:
            parts = odata.parse_batch(request.body, request.headers.get("content-type", ""))
        except ValueError as exc:
            return odata_error(400, str(exc))
        operations = sum(len(p.requests) for p in parts)
        with self.lock:
            self.batches.append(operations)
        if operations > MAX_BATCH:
            return odata_error(400, f"A batch can contain up to {MAX_BATCH} operations, not "
                               f"{operations}.")
        go_on = "odata.continue-on-error" in request.headers.get("prefer", "")
        answers: list[odata.InnerResponse | list[odata.InnerResponse]] = []
        for part in parts:
            with self.lock:
                self._journal = []
                done: list[odata.InnerResponse] = []
                failed: odata.InnerResponse | None = None
                for inner in part.requests:
                    path = urlsplit(inner.url).path
                    resource = path.split(DATA + "/", 1)[-1]
                    try:
                        status, row = self._write(inner.method, resource, inner.body)
                    except (WriteRefused, ODataError) as exc:
                        code = exc.status if isinstance(exc, WriteRefused) else 400
                        failed = odata.InnerResponse(code, _dumps({"error": {
                            "code": "", "message": "An error has occurred.",
                            "innererror": {"message": str(exc)}}}),
                            content_id=inner.content_id)
                        break
                    done.append(odata.InnerResponse(
                        status, _dumps(row) if row is not None else b"",
                        content_id=inner.content_id))
                if failed is not None:
                    self._rollback(self._journal)
                self._journal = None
            answers.append(failed if failed is not None else
                           (done if part.changeset else done[0]))
            if failed is not None and not go_on:
                break
        content_type, body = odata.render_batch(answers)
        return Response(200, body, {"Content-Type": content_type, "OData-Version": "4.0"})

    def _rollback(self, journal: list[tuple[str, Key, dict[str, Any] | None]]) -> None:
        for entity, key, previous in reversed(journal):
            if previous is None:
                self.rows[entity].pop(key, None)
            else:
                self.rows[entity][key] = previous
        for entity, key, _previous in journal:
            if entity == "FreeTextInvoiceLines":
                self._total(key[0], key[1])
