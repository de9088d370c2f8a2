"""An emulator of the QuickBooks Online Accounting API (v3) that billbridge and
the official python-quickbooks + intuit-oauth clients use, on 127.0.0.1.

Served under ``/v3/company/{realmId}/``: ``POST {entity}`` (create, update, and
``?operation=delete|void``), ``GET {entity}/{id}``, ``GET|POST query``, ``POST
batch`` (at most 30 items; ``bId`` of at most 10 characters with a request id),
for customer, employee, vendor, item, timeactivity, invoice and payment; and
Intuit's OAuth 2.0 token endpoint and discovery document. A repeated
``requestid`` (at most 50 characters, 36 on batch) answers what the first
request answered. Bearer tokens expire; 500 requests a minute, 40 batch
requests a minute and 10 concurrent requests per realm are enforced with a 429
``ThrottleExceeded`` (no Retry-After, as QuickBooks). The company's rules are
in ``company.py``; faults (timeouts, 5xx, 429, lost acknowledgements) come
from the base class, answered in QuickBooks' Fault shape.
"""

from __future__ import annotations

import base64
import collections
import copy
import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from billbridge.connectors.quickbooks.emulator.company import Company, Fault
from billbridge.connectors.quickbooks.emulator.query import QueryError, parse
from billbridge.connectors.ratelimit import MonotonicClock, RealClock
from billbridge.emulation.server import ADMIN_PREFIX, EmulatorServer, Request, Response

ENTITIES = {"customer": "Customer", "employee": "Employee", "vendor": "Vendor", "item": "Item",
            "timeactivity": "TimeActivity", "invoice": "Invoice", "payment": "Payment",
            "account": "Account", "taxcode": "TaxCode"}
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
DISCOVERY_PATH = "/.well-known/openid_configuration"
REQUEST_ID_LIMIT, BATCH_REQUEST_ID_LIMIT, BATCH_ID_LIMIT = 50, 36, 10


def wire(value: Any) -> Any:
    """Amounts go out as JSON numbers, as QuickBooks sends them."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire(v) for v in value]
    return value


# The emulator's second API shape (docs/connectors/quickbooks.md "API versions"):
# asked with a minorversion at or past ``void_status_from`` (76 by default), an
# invoice states its state in ``TxnStatus`` (``Open``, ``Paid`` or ``Voided``,
# as an Estimate's TxnStatus does), and a voided one keeps its private note as
# written instead of getting ``Voided`` put in front of it (the older shape,
# which the connector reads). The emulator's own modelled difference, so an
# upgrade preview has one to show; not a claim about an Intuit minor version.
VOID_STATUS_FROM = 76
VOIDED_NOTE = "Voided"


def versioned(entity: str, record: dict[str, Any], minor_version: int,
              void_status_from: int = VOID_STATUS_FROM) -> dict[str, Any]:
    """``record`` as QuickBooks answers it at ``minor_version``."""
    if entity != "Invoice" or minor_version < void_status_from:
        return record
    note = str(record.get("PrivateNote") or "")
    voided = note.startswith(VOIDED_NOTE) and Decimal(str(record.get("TotalAmt") or 0)) == 0
    shaped = dict(record)
    if voided:
        kept = note.removeprefix(VOIDED_NOTE).lstrip()
        if kept:
            shaped["PrivateNote"] = kept
        else:
            shaped.pop("PrivateNote", None)  # QuickBooks leaves an empty field out
        shaped["TxnStatus"] = "Voided"
    else:
        owed = Decimal(str(record.get("Balance") or 0))
        shaped["TxnStatus"] = "Paid" if owed <= 0 and record.get("TotalAmt") else "Open"
    return shaped


def minor_version(request: Request) -> int:
    """The ``minorversion`` a request asks for; none is the base version (0)."""
    given = request.arg("minorversion") or ""
    return int(given) if given.isdigit() else 0


def _time() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def fault_response(fault: Fault) -> Response:
    return Response(fault.status, {"Fault": fault.fault(), "time": _time()})


def throttled() -> Fault:
    return Fault("3001", "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                 "The request limit was reached.", status=429, kind="ThrottleExceeded")


class QuickBooksEmulator(EmulatorServer):
    def __init__(self, *, port: int = 0, realm_id: str = "9341453050129711",
                 client_id: str = "qbo-client-id", client_secret: str = "qbo-client-secret",
                 refresh_token: str = "qbo-refresh-token", access_token: str = "qbo-access-token",
                 token_ttl: float = 3600.0, max_batch: int = 30, requests_per_minute: int = 500,
                 batch_per_minute: int = 40, concurrency: int = 10,
                 clock: MonotonicClock | None = None, tls: tuple[str, str] | None = None,
                 utc_offset: timedelta = timedelta(hours=-8)) -> None:
        super().__init__(port=port, token=None, tls=tls)  # auth is QuickBooks-shaped, below
        self.realm_id = realm_id
        self.void_status_from = VOID_STATUS_FROM
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_tokens = {refresh_token}
        self.token_ttl = token_ttl
        self.clock = clock or RealClock()
        self.tokens: dict[str, float] = {access_token: self.clock.monotonic() + token_ttl}
        self.max_batch = max_batch
        self.limits = {"all": requests_per_minute, "batch": batch_per_minute}
        self.concurrency = concurrency
        self.company = Company(utc_offset=utc_offset)
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) of API calls
        self.replays = 0  # answers given again for a repeated requestid
        self.refreshes = 0
        self._answers: dict[str, Response] = {}
        self._windows: dict[str, collections.deque[float]] = {
            k: collections.deque() for k in self.limits}
        self._in_flight = 0
        self._gate = threading.Lock()
        base = "/v3/company/{realm}"
        self.route("GET", DISCOVERY_PATH, self._discovery)
        self.route("POST", TOKEN_PATH, self._token)
        self.route("POST", f"{base}/batch", self._api(self._batch))
        self.route("GET", f"{base}/query", self._api(self._query))
        self.route("POST", f"{base}/query", self._api(self._query))
        self.route("GET", f"{base}/{{entity}}/{{id}}", self._api(self._read))
        self.route("POST", f"{base}/{{entity}}", self._api(self._write))

    # -- test helpers ----------------------------------------------------------------
    def records(self, entity: str) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self.company.records[entity].values()))

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    def seed(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        """A record entered in QuickBooks by hand (no faults, no rules)."""
        with self.lock:
            return copy.deepcopy(self.company.seed(entity, body))

    def calls(self, path_suffix: str = "") -> int:
        """API requests received (any answer), optionally those to one endpoint."""
        with self.lock:
            return sum(1 for _m, path, _s in self.requests if path.endswith(path_suffix))

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def pay(self, invoice_id: str, amount: Decimal | str) -> dict[str, Any]:
        """A customer payment against one invoice, entered in QuickBooks."""
        with self.lock:
            invoice = self.company.records["Invoice"][invoice_id]
            return self.company.create("Payment", {
                "CustomerRef": invoice["CustomerRef"], "TotalAmt": str(amount),
                "Line": [{"Amount": str(amount),
                          "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}]})

    def void(self, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            invoice = self.company.records["Invoice"][invoice_id]
            return self.company.void("Invoice", {"Id": invoice_id,
                                                 "SyncToken": invoice["SyncToken"]})

    # -- admission: auth, realm, limits -------------------------------------------------
    def dispatch(self, request: Request, *, drop: Callable[[], None]) -> Response | None:
        if request.path.startswith(ADMIN_PREFIX) or request.path in (TOKEN_PATH,
                                                                     DISCOVERY_PATH):
            return super().dispatch(request, drop=drop)
        refused = self._admit(request)
        if refused is not None:
            self._log(request, refused)
            return refused
        try:
            response = super().dispatch(request, drop=drop)
        finally:
            with self._gate:
                self._in_flight -= 1
        if response is not None:
            response = self._shaped(response)
            self._log(request, response)
        return response

    def _log(self, request: Request, response: Response) -> None:
        with self.lock:
            self.requests.append((request.method, request.path, response.status))

    def _admit(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        with self.lock:
            expiry = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        now = self.clock.monotonic()
        if expiry is None or expiry <= now:
            return fault_response(Fault(
                "3200", "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "Token expired" if expiry is not None else "Token invalid", status=401,
                kind="AUTHENTICATION"))
        if not request.path.startswith(f"/v3/company/{self.realm_id}/"):
            return fault_response(Fault(
                "3100", "message=ApplicationAuthorizationFailed; errorCode=003100; "
                "statusCode=403", "The application is not connected to this company",
                status=403, kind="AuthorizationFault"))
        with self._gate:
            kinds = ["all", "batch"] if request.path.endswith("/batch") else ["all"]
            for kind in kinds:
                window = self._windows[kind]
                while window and now - window[0] >= 60.0:
                    window.popleft()
            if self._in_flight >= self.concurrency or \
                    any(len(self._windows[k]) >= self.limits[k] for k in kinds):
                return fault_response(throttled())
            for kind in kinds:
                self._windows[kind].append(now)
            self._in_flight += 1
        return None

    @staticmethod
    def _shaped(response: Response) -> Response:
        """The base class's ``{"error": …}`` answers (injected faults, unknown
        routes) in QuickBooks' Fault shape."""
        body = response.body
        if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
            return response
        if response.status == 429:
            fault = throttled()
        elif response.status >= 500:
            fault = Fault("10000", "An application error has occurred while processing your "
                          "request", f"System Failure Error: {body['error'].get('message')}",
                          status=response.status, kind="SystemFault")
        else:
            fault = Fault("500", "Unsupported Operation", str(body["error"].get("message")),
                          status=response.status)
        return Response(response.status, {"Fault": fault.fault(), "time": _time()},
                        response.headers)

    # -- API routes ------------------------------------------------------------------
    def _api(self, handler: Callable[[Request], Any]) -> Callable[[Request], Response]:
        """Run a handler under the company's lock, its faults as Fault bodies;
        a request id seen before answers what it answered then."""
        def answer(request: Request) -> Response:
            request_id = request.arg("requestid") if request.method == "POST" else None
            limit = BATCH_REQUEST_ID_LIMIT if request.path.endswith("/batch") \
                else REQUEST_ID_LIMIT
            with self.lock:
                if request_id is not None:
                    if len(request_id) > limit:
                        return fault_response(Fault("2050", "String length is either shorter "
                                                    "or longer than supported by specification",
                                                    f"requestid is at most {limit} characters"))
                    if request_id in self._answers:
                        self.replays += 1
                        return self._answers[request_id]
                try:
                    response = Response(200, {**wire(handler(request)), "time": _time()})
                except Fault as fault:
                    response = fault_response(fault)
                if request_id is not None:
                    self._answers[request_id] = response
                return response
        return answer

    def _body(self, request: Request) -> Any:
        try:
            return json.loads(request.body or b"{}", parse_float=Decimal)
        except ValueError:
            raise Fault("2020", "Request has invalid or unsupported property",
                        "the body is not JSON") from None

    @staticmethod
    def _entity(name: str) -> str:
        entity = ENTITIES.get(name.lower())
        if entity is None:
            raise Fault("500", "Unsupported Operation", f"Unsupported entity {name}")
        return entity

    def _read(self, request: Request) -> dict[str, Any]:
        entity = self._entity(request.params["entity"])
        record = self.company.get(entity, request.params["id"])
        if record is None:
            raise Fault("610", "Object Not Found", f"Object Not Found : {entity} "
                        f"{request.params['id']} was not found")
        return {entity: versioned(entity, record, minor_version(request),
                                  self.void_status_from)}

    def _write(self, request: Request) -> dict[str, Any]:
        entity = self._entity(request.params["entity"])
        body = self._body(request)
        return {entity: self._operate(entity, request.arg("operation"), body)}

    def _operate(self, entity: str, operation: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Fault("2020", "Request has invalid or unsupported property",
                        f"{entity} must be an object")
        if operation is None:  # one endpoint for both, as in QuickBooks: an Id updates
            operation = "create" if body.get("Id") in (None, "") else "update"
        if operation == "create":
            return self.company.create(entity, body)
        if operation == "update":
            return self.company.update(entity, body)
        if operation == "delete":
            return self.company.delete(entity, body)
        if operation == "void":
            return self.company.void(entity, body)
        raise Fault("500", "Unsupported Operation", f"Operation {operation} is not supported")

    def _query(self, request: Request) -> dict[str, Any]:
        statement = request.arg("query") if request.method == "GET" else request.body.decode()
        try:
            query = parse(statement or "")
        except QueryError as exc:
            raise Company.parse_error(exc) from None
        answer = self.company.query(query)
        minor = minor_version(request)
        return {"QueryResponse": {name: [versioned(name, r, minor, self.void_status_from)
                                          for r in rows] if isinstance(rows, list) else rows
                                  for name, rows in answer.items()}}

    def _batch(self, request: Request) -> dict[str, Any]:
        body = self._body(request)
        items = body.get("BatchItemRequest") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise Fault("2020", "Required param missing, need to supply the required value "
                        "for the API", "Required parameter BatchItemRequest is missing")
        if len(items) > self.max_batch:
            raise Fault("1040", "Batch size exceeds allowed limit",
                        f"{len(items)} items; the batch limit size is {self.max_batch}")
        if request.arg("requestid") is not None and \
                any(len(str(i.get("bId", ""))) > BATCH_ID_LIMIT for i in items):
            raise Fault("2050", "String length is either shorter or longer than supported by "
                        "specification", f"with a requestid, a bId is at most {BATCH_ID_LIMIT} "
                        "characters")
        return {"BatchItemResponse": [self._batch_item(item) for item in items]}

    def _batch_item(self, item: dict[str, Any]) -> dict[str, Any]:
        """Items run one after the other, each its own success or Fault."""
        answer: dict[str, Any] = {"bId": item.get("bId")}
        try:
            if "Query" in item:
                try:
                    answer["QueryResponse"] = self.company.query(parse(str(item["Query"])))
                except QueryError as exc:
                    raise Company.parse_error(exc) from None
                return answer
            named = [k for k in item if k in ENTITIES.values()]
            if len(named) != 1:
                raise Fault("2020", "Request has invalid or unsupported property",
                            "a batch item names one entity")
            entity = named[0]
            answer[entity] = self._operate(entity, item.get("operation"), item[entity])
        except Fault as fault:
            answer["Fault"] = fault.fault()
        return answer

    # -- OAuth 2.0 -------------------------------------------------------------------
    def _discovery(self, _request: Request) -> Response:
        """What intuit-oauth's AuthClient reads first: where Intuit's endpoints are."""
        base = self.url
        return Response(200, {"issuer": "https://oauth.platform.intuit.com/op/v1",
                              "authorization_endpoint": f"{base}/connect/oauth2",
                              "token_endpoint": f"{base}{TOKEN_PATH}",
                              "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
                              "revocation_endpoint": f"{base}/oauth2/v1/tokens/revoke",
                              "jwks_uri": f"{base}/op/v1/jwks"})

    def _token(self, request: Request) -> Response:
        """``grant_type=refresh_token`` with the client id and secret as HTTP Basic."""
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return Response(401, {"error": "invalid_client"})
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return Response(400, {"error": "unsupported_grant_type"})
        with self.lock:
            if form.get("refresh_token") not in self.refresh_tokens:
                return Response(400, {"error": "invalid_grant"})
            access = f"qbo-{uuid.uuid4().hex}"
            self.tokens[access] = self.clock.monotonic() + self.token_ttl
            self.refreshes += 1
        return Response(200, {"token_type": "bearer", "access_token": access,
                              "expires_in": int(self.token_ttl),
                              "refresh_token": form["refresh_token"],
                              "x_refresh_token_expires_in": 8_726_400})
