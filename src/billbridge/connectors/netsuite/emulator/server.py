"""A NetSuite account emulator: REST record service, SuiteQL, the asynchronous
batch and its jobs, governance limits and TBA signatures, with NetSuite's
paths, field names, error documents and limits.

Served under ``/services/rest``: ``record/v1/{type}`` (POST create; POST, PUT
or PATCH of a collection with ``Prefer: respond-async`` as a batch of up to
100), ``record/v1/{type}/{id|eid:…}`` (GET, PUT upsert by external id, PATCH),
``async/v1/job/{id}`` with ``/task``, ``/task/{n}`` and ``/task/{n}/result``,
``query/v1/suiteql`` (see ``suiteql.py``) and
``system/v1/governanceLimits``. Every call must carry a valid OAuth 1.0a
HMAC-SHA256 signature for the account's realm; a bad signature, an unknown
token, a stale timestamp or a replayed nonce gets NetSuite's 401. Past the
concurrency limit it answers 429 ``CONCURRENCY_LIMIT_EXCEEDED``. Faults come
from the base class, reshaped into NetSuite's error document.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, unquote

from billbridge.connectors.netsuite.emulator import suiteql
from billbridge.emulation.server import ADMIN_PREFIX, EmulatorServer, Request, Response

ERROR_TYPE = "application/vnd.oracle.resource+json; type=error"
COLLECTION_TYPE = "application/vnd.oracle.resource+json; type=collection"
RECORD_TYPES = ("customer", "job", "timeBill", "invoice")
MAX_BATCH = 100
APPROVED = "2"  # a time bill's approvalStatus (1 pending approval, 2 approved, 3 rejected)
MAX_PAGE = 1000
SIGNATURE_WINDOW = 300  # seconds a TBA timestamp may be off
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
          503: "Service Unavailable"}
REQUIRED = {"customer": ("companyName", "subsidiary"), "job": ("companyName", "parent"),
            "timeBill": ("employee", "customer", "tranDate", "hours"),
            "invoice": ("entity", "item")}
REFERENCES: dict[str, dict[str, tuple[str, ...]]] = {
    "job": {"parent": ("customer",)}, "timeBill": {"customer": ("job", "customer")},
    "invoice": {"entity": ("job", "customer")}}
_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')


def ns_error(status: int, code: str, detail: str, **where: str) -> Response:
    """NetSuite's error document."""
    item: dict[str, str] = {"detail": detail, "o:errorCode": code}
    item.update({f"o:{k}": v for k, v in where.items()})
    return Response(status, {"type": f"https://www.rfc-editor.org/rfc/rfc9110.html#section-15."
                                     f"{5 if status < 500 else 6}.{status % 100 + 1}",
                             "title": TITLES.get(status, "Error"), "status": status,
                             "o:errorDetails": [item]}, {"Content-Type": ERROR_TYPE})


def percent(value: str) -> str:
    """RFC 5849 percent-encoding: everything but unreserved characters."""
    return quote(value, safe="~")


def signature_base(method: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    pairs = sorted((percent(k), percent(v)) for k, v in params)
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    return "&".join([method.upper(), percent(url), percent(normalized)])


def tba_signature(base: str, consumer_secret: str, token_secret: str) -> str:
    key = f"{percent(consumer_secret)}&{percent(token_secret)}".encode()
    return base64.b64encode(hmac.new(key, base.encode(), hashlib.sha256).digest()).decode()


def _nonexistent(request: Request) -> Response:
    return ns_error(404, "NONEXISTENT_ID", "The record instance does not exist. Provide a valid "
                    "record instance ID.", urlPath=request.path)


class NetSuiteEmulator(EmulatorServer):
    """One account. Records live in ``records[type][internal id]`` as REST
    bodies; ``lastModifiedDate`` moves on the emulator's own clock."""

    def __init__(self, *, port: int = 0, account: str = "1234567_SB1",
                 consumer_key: str = "ck", consumer_secret: str = "cs", token_id: str = "tk",
                 token_secret: str = "ts", concurrency_limit: int = 15,
                 unallocated_limit: int | None = None,
                 without_external_id: Iterable[str] = (), job_reads_to_complete: int = 0,
                 latency: float = 0.0) -> None:
        super().__init__(port=port, token=None)
        self.account = account
        self.consumers = {consumer_key: consumer_secret}
        self.tokens = {token_id: token_secret}
        self.concurrency_limit = concurrency_limit
        self.unallocated_limit = concurrency_limit if unallocated_limit is None \
            else unallocated_limit
        self.without_external_id = frozenset(without_external_id)
        self.job_reads_to_complete = job_reads_to_complete
        self.latency = latency  # seconds each call takes, counted in flight (no lock held)
        self.hold: threading.Event | None = None
        """While set to an Event, a call stays in flight until it is set (at most
        30 s): a test holds one call open however busy the machine is."""
        self.reject_if: Callable[[str, Mapping[str, Any]], str | None] = lambda t, body: None
        self.calls: list[tuple[str, str]] = []  # (method, path) of every signed request
        self.in_flight = 0
        self.max_in_flight = 0
        self._flight = threading.Lock()
        self.reset()
        base = "/services/rest"
        self.route("GET", base + "/system/v1/governanceLimits", self._governance)
        self.route("POST", base + "/query/v1/suiteql", self._suiteql)
        for method in ("POST", "PUT", "PATCH"):
            self.route(method, base + "/record/v1/{type}", self._collection)
        self.route("GET", base + "/record/v1/{type}/{key}", self._get)
        self.route("PUT", base + "/record/v1/{type}/{key}", self._upsert)
        self.route("PATCH", base + "/record/v1/{type}/{key}", self._patch)
        self.route("GET", base + "/async/v1/job/{job}", self._job)
        self.route("GET", base + "/async/v1/job/{job}/task", self._tasks)
        self.route("GET", base + "/async/v1/job/{job}/task/{task}", self._task)
        self.route("GET", base + "/async/v1/job/{job}/task/{task}/result", self._result)

    def reset(self) -> None:
        with self.lock:
            self.records: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in RECORD_TYPES}
            self.jobs: dict[str, dict[str, Any]] = {}
            self.job_keys: dict[str, str] = {}
            self.nonces: set[tuple[str, str, str]] = set()
            self.calls = []
            self._ids = itertools.count(101)
            self._job_ids = itertools.count(1)
            self._clock = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    # -- helpers for tests ------------------------------------------------------------
    def _tick(self) -> datetime:
        """Second resolution, as SuiteQL shows it; strictly increasing."""
        self._clock = max(self._clock + timedelta(seconds=1),
                          datetime.now(UTC).replace(microsecond=0))
        return self._clock

    def all(self, record_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.records[record_type].values()]

    def pay_invoice(self, internal_id: str, amount: Decimal | None = None) -> None:
        """A payment applied (the whole balance by default)."""
        with self.lock:
            invoice = self.records["invoice"][internal_id]
            unpaid = Decimal(invoice["amountRemaining"])
            paid = unpaid if amount is None else min(unpaid, amount)
            invoice["amountRemaining"] = str(unpaid - paid)
            invoice["status"] = "B" if unpaid - paid == 0 else "A"
            invoice["lastModifiedDate"] = self._tick()

    def void_invoice(self, internal_id: str) -> None:
        with self.lock:
            invoice = self.records["invoice"][internal_id]
            invoice.update(status="V", lastModifiedDate=self._tick())

    def location(self, record_type: str, internal_id: str) -> str:
        return f"{self.url}/services/rest/record/v1/{record_type}/{internal_id}"

    # -- authentication, concurrency, fault shapes ------------------------------------
    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        params = {k: unquote(v) for k, v in _AUTH_PARAM.findall(header)}
        refused = ns_error(401, "INVALID_LOGIN", "Invalid login attempt. For more details, see "
                           "the Login Audit Trail in the NetSuite UI at Setup > Users/Roles > "
                           "User Management > View Login Audit Trail.")
        refused.headers["WWW-Authenticate"] = (f'OAuth realm="{self.account}", '
                                               'error="token_rejected", '
                                               'error_description="Invalid login attempt."')
        consumer = self.consumers.get(params.get("oauth_consumer_key", ""))
        token = self.tokens.get(params.get("oauth_token", ""))
        if not header.startswith("OAuth ") or consumer is None or token is None \
                or params.get("realm") != self.account \
                or params.get("oauth_signature_method") != "HMAC-SHA256" \
                or params.get("oauth_version", "1.0") != "1.0":
            return refused
        try:
            stamp = int(params.get("oauth_timestamp", ""))
        except ValueError:
            return refused
        if abs(time.time() - stamp) > SIGNATURE_WINDOW:
            return refused
        signed = [(k, v) for k, v in params.items() if k not in ("realm", "oauth_signature")]
        signed += [(k, v) for k, values in request.query.items() for v in values]
        url = f"http://{request.headers.get('host', '').lower()}{request.path}"
        expected = tba_signature(signature_base(request.method, url, signed), consumer, token)
        if not hmac.compare_digest(expected, params.get("oauth_signature", "")):
            return refused
        nonce = (params["oauth_token"], params.get("oauth_nonce", ""), str(stamp))
        with self.lock:
            if nonce in self.nonces:
                return refused  # a replayed request
            self.nonces.add(nonce)
        return None

    def dispatch(self, request: Request, *, drop: Callable[[], None]) -> Response | None:
        if request.path.startswith(ADMIN_PREFIX):
            return super().dispatch(request, drop=drop)
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        with self._flight:
            if self.in_flight >= self.concurrency_limit:
                return ns_error(429, "CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit "
                                f"exceeded: {self.concurrency_limit} requests may be in flight "
                                "for this account. Retry when fewer are running.")
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            with self.lock:
                self.calls.append((request.method, request.path))
            gate = self.hold
            if gate is not None:
                gate.wait(30)
            if self.latency:
                time.sleep(self.latency)
            response = super().dispatch(request, drop=drop)
        finally:
            with self._flight:
                self.in_flight -= 1
        if response is not None and isinstance(response.body, dict) \
                and "error" in response.body and "o:errorDetails" not in response.body:
            inner = response.body["error"]  # an injected fault or a routing miss, reshaped
            code = {404: "NONEXISTENT_ID", 429: "CONCURRENCY_LIMIT_EXCEEDED"}.get(
                response.status, "UNEXPECTED_ERROR")
            reshaped = ns_error(response.status, code, str(inner.get("message")))
            reshaped.headers.update({k: v for k, v in response.headers.items()
                                     if k.lower() == "retry-after"})
            return reshaped
        return response

    def _governance(self, _request: Request) -> Response:
        return Response(200, {"accountConcurrencyLimit": self.concurrency_limit,
                              "accountUnallocatedConcurrencyLimit": self.unallocated_limit,
                              "integrationLimitType": "accountLimit"})

    # -- records ----------------------------------------------------------------------
    def _type(self, request: Request) -> str | Response:
        record_type = request.params["type"]
        if record_type not in self.records:
            return ns_error(404, "INVALID_RCRD_TYPE", f"Record type '{record_type}' does not "
                            "exist.", urlPath=request.path)
        return record_type

    def _find(self, record_type: str, key: str) -> dict[str, Any] | None:
        if key.startswith("eid:"):
            wanted = key[4:]
            return next((r for r in self.records[record_type].values()
                         if r.get("externalId") == wanted), None)
        return self.records[record_type].get(key)

    def _problem(self, record_type: str, body: Mapping[str, Any]) -> Response | None:
        if "externalId" in body and record_type in self.without_external_id:
            return ns_error(400, "INVALID_FLD", f"The field externalId is not available for "
                            f"record type {record_type} in this account.", errorPath="externalId")
        missing = [f for f in REQUIRED[record_type] if body.get(f) in (None, "", {})]
        if missing:
            return ns_error(400, "USER_ERROR", "Please enter value(s) for: "
                            f"{', '.join(missing)}", errorPath=missing[0])
        references: dict[str, tuple[str, ...]] = REFERENCES.get(record_type, {})
        for field, types in references.items():
            ref = body.get(field)
            if isinstance(ref, Mapping) and not any(
                    self._find(t, str(ref.get("id") or f"eid:{ref.get('externalId')}"))
                    for t in types):
                return ns_error(400, "INVALID_KEY_OR_REF", f"Invalid {field} reference key "
                                f"{ref.get('id') or ref.get('externalId')}.", errorPath=field)
        for number in ("hours", "rate"):
            if number in body:
                try:
                    Decimal(str(body[number]))
                except InvalidOperation:
                    return ns_error(400, "INVALID_FLD_VALUE", f"Invalid number {body[number]!r} "
                                    f"for field {number}.", errorPath=number)
        reason = self.reject_if(record_type, body)
        return ns_error(400, "USER_ERROR", reason) if reason else None

    def _write(self, record_type: str, body: Mapping[str, Any],
               existing: dict[str, Any] | None) -> tuple[str, Response | None]:
        """Create or update a record (the caller holds the lock)."""
        merged = {**(existing or {}), **body}
        problem = self._problem(record_type, merged)
        if problem is not None:
            return "", problem
        stamp = self._tick()
        if existing is None:
            internal = str(next(self._ids))
            merged.update(id=internal, dateCreated=stamp)
            if record_type == "timeBill":  # no approval routing: time is approved on entry
                merged.setdefault("approvalStatus", {"id": APPROVED})
        else:
            internal = str(existing["id"])
        merged["lastModifiedDate"] = stamp
        if record_type == "invoice" and existing is None:
            total = sum((Decimal(str(i.get("amount", "0"))) for i in
                         (merged.get("item") or {}).get("items", [])), Decimal(0))
            merged.update(total=str(total), amountRemaining=str(total), status="A",
                          tranDate=merged.get("tranDate") or stamp.date().isoformat())
        self.records[record_type][internal] = merged
        return internal, None

    def _typed_body(self, request: Request) -> tuple[str, dict[str, Any]] | Response:
        """The record type in the URL and the JSON body, or the answer refusing them."""
        record_type = self._type(request)
        if isinstance(record_type, Response):
            return record_type
        body = self._body(request)
        return body if isinstance(body, Response) else (record_type, body)

    def _body(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = request.json()
        except ValueError:
            return ns_error(400, "INVALID_CONTENT", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return ns_error(400, "INVALID_CONTENT", "The request body must be a JSON object.")
        return body

    def _get(self, request: Request) -> Response:
        record_type = self._type(request)
        if isinstance(record_type, Response):
            return record_type
        with self.lock:
            record = self._find(record_type, request.params["key"])
            if record is None:
                return _nonexistent(request)
            out = {k: (v.isoformat() if isinstance(v, datetime | date) else v)
                   for k, v in record.items()}
        return Response(200, {"links": [{"rel": "self", "href": self.location(
            record_type, out["id"])}], **out})

    def _upsert(self, request: Request) -> Response:
        record_type = self._type(request)
        if isinstance(record_type, Response):
            return record_type
        key = request.params["key"]
        if not key.startswith("eid:"):
            return ns_error(405, "INVALID_METHOD", "PUT upserts by external id only: use "
                            "eid:{externalId} in the URL.", urlPath=request.path)
        if record_type in self.without_external_id:
            return ns_error(400, "INVALID_FLD", f"Record type {record_type} does not support "
                            "external ids in this account.", urlPath=request.path)
        body = self._body(request)
        if isinstance(body, Response):
            return body
        with self.lock:
            existing = self._find(record_type, key)
            internal, problem = self._write(record_type, {**body, "externalId": key[4:]},
                                            existing)
        return problem if problem is not None else self._written(record_type, internal)

    def _patch(self, request: Request) -> Response:
        typed = self._typed_body(request)
        if isinstance(typed, Response):
            return typed
        record_type, body = typed
        with self.lock:
            existing = self._find(record_type, request.params["key"])
            if existing is None:
                return _nonexistent(request)
            internal, problem = self._write(record_type, body, existing)
        return problem if problem is not None else self._written(record_type, internal)

    def _written(self, record_type: str, internal: str) -> Response:
        """NetSuite's answer to a write: 204 with the record's location."""
        return Response(204, None, {"Location": self.location(record_type, internal)})

    def _collection(self, request: Request) -> Response:
        typed = self._typed_body(request)
        if isinstance(typed, Response):
            return typed
        record_type, body = typed
        batch = request.headers.get("content-type", "").startswith(COLLECTION_TYPE.split(";")[0]) \
            and "type=collection" in request.headers.get("content-type", "")
        if not batch:
            if request.method != "POST":
                return ns_error(405, "INVALID_METHOD", f"{request.method} needs a record id, "
                                "or a collection body for a batch.", urlPath=request.path)
            with self.lock:
                internal, problem = self._write(record_type, body, None)
            if problem is not None:
                return problem
            return Response(204, None, {"Location": self.location(record_type, internal)})
        if "respond-async" not in request.headers.get("prefer", ""):
            return ns_error(400, "INVALID_HEADER", "Batch requests must be sent with the header "
                            "Prefer: respond-async.", errorHeader="Prefer")
        items = body.get("items")
        if not isinstance(items, list) or not items:
            return ns_error(400, "INVALID_CONTENT", "A batch body is {\"items\": [...]} with at "
                            "least one record.")
        if len(items) > MAX_BATCH:
            return ns_error(400, "INVALID_CONTENT", f"A batch request can hold at most "
                            f"{MAX_BATCH} records; this one has {len(items)}.")
        if request.method == "PUT" and any(not isinstance(i, dict) or not i.get("externalId")
                                           for i in items):
            return ns_error(400, "INVALID_CONTENT", "Every record of a batch upsert needs an "
                            "externalId.")
        return self._submit(request, record_type, items)

    # -- the asynchronous batch ---------------------------------------------------------
    def _submit(self, request: Request, record_type: str, items: list[Any]) -> Response:
        key = request.headers.get("x-netsuite-idempotency-key")
        with self.lock:
            if key and key in self.job_keys:
                answer = ns_error(400, "IDEMPOTENCY_ERROR", "A request with the same idempotency "
                                  "key is already submitted. See the \"Location\" header for a "
                                  "link to the previously submitted job")
                answer.headers["Location"] = self._job_url(self.job_keys[key])
                return answer
            job_id = str(next(self._job_ids))
            self.jobs[job_id] = {"method": request.method, "type": record_type, "items": items,
                                 "results": None, "reads": 0}
            if key:
                self.job_keys[key] = job_id
            if self.job_reads_to_complete <= 0:
                self._run_job(job_id)
        return Response(202, None, {"Location": self._job_url(job_id),
                                    "Preference-Applied": "respond-async"})

    def _job_url(self, job_id: str) -> str:
        return f"{self.url}/services/rest/async/v1/job/{job_id}"

    def _run_job(self, job_id: str) -> None:
        """Apply a job's records, one task each (the caller holds the lock)."""
        job = self.jobs[job_id]
        record_type = job["type"]
        results: list[tuple[str | None, Response | None]] = []
        for item in job["items"]:
            if not isinstance(item, dict):
                results.append((None, ns_error(400, "INVALID_CONTENT", "A batch item must be a "
                                               "JSON object.")))
                continue
            body = dict(item)
            existing = None
            if job["method"] == "PUT":
                existing = self._find(record_type, f"eid:{body['externalId']}")
            elif job["method"] == "PATCH":
                existing = self._find(record_type, str(body.pop("id", "")))
                if existing is None:
                    results.append((None, ns_error(404, "NONEXISTENT_ID", "The record instance "
                                                   "does not exist.")))
                    continue
            results.append(self._write(record_type, body, existing))
        job["results"] = results
        job["finished"] = datetime.now(UTC).isoformat(timespec="seconds")

    def _job_state(self, request: Request) -> dict[str, Any] | Response:
        with self.lock:
            job = self.jobs.get(request.params["job"])
            if job is None:
                return ns_error(404, "NONEXISTENT_ID", "The job does not exist.",
                                urlPath=request.path)
            return job

    def _job(self, request: Request) -> Response:
        job = self._job_state(request)
        if isinstance(job, Response):
            return job
        url = self._job_url(request.params["job"])
        with self.lock:
            job["reads"] += 1
            if job["results"] is None and job["reads"] >= self.job_reads_to_complete:
                self._run_job(request.params["job"])
            done = job["results"] is not None
        return Response(200, {"links": [{"rel": "self", "href": url}], "completed": done,
                              "id": request.params["job"],
                              "progress": "succeeded" if done else "pending",
                              "task": {"links": [{"rel": "self", "href": f"{url}/task"}]}})

    def _tasks(self, request: Request) -> Response:
        job = self._job_state(request)
        if isinstance(job, Response):
            return job
        url = f"{self._job_url(request.params['job'])}/task"
        count = len(job["items"]) if job["results"] is not None else 0
        return Response(200, {"links": [{"rel": "self", "href": url}], "count": count,
                              "hasMore": False, "offset": 0, "totalResults": count,
                              "items": [{"links": [{"rel": "self", "href": f"{url}/{n}"}],
                                         "id": str(n)} for n in range(1, count + 1)]})

    def _task_result(self, request: Request) -> tuple[str, Response | None] | Response:
        job = self._job_state(request)
        if isinstance(job, Response):
            return job
        task = request.params["task"]
        results = job["results"] or []
        if not task.isdigit() or not 1 <= int(task) <= len(results):
            return ns_error(404, "NONEXISTENT_ID", f"The task {task} does not exist.",
                            urlPath=request.path)
        result: tuple[str, Response | None] = results[int(task) - 1]
        return result

    def _task(self, request: Request) -> Response:
        found = self._task_result(request)
        if isinstance(found, Response):
            return found
        url = f"{self._job_url(request.params['job'])}/task/{request.params['task']}"
        return Response(200, {"links": [{"rel": "related", "href": f"{url}/result"},
                                        {"rel": "self", "href": url}],
                              "completed": True, "id": request.params["task"],
                              "progress": "failed" if found[1] else "succeeded"})

    def _result(self, request: Request) -> Response:
        found = self._task_result(request)
        if isinstance(found, Response):
            return found
        internal, problem = found
        if problem is not None:
            return Response(200, problem.body)  # the task ran; its result is the error document
        job = self.jobs[request.params["job"]]
        return Response(200, {"links": [{"rel": "self", "href": self.location(
            job["type"], internal)}], "id": internal})

    # -- SuiteQL ----------------------------------------------------------------------
    def _tables(self) -> dict[str, Callable[[], list[dict[str, Any]]]]:
        def rows(record_type: str) -> list[dict[str, Any]]:
            return [_columns(r) for r in self.records[record_type].values()]

        def invoices() -> list[dict[str, Any]]:
            return [{**_columns(r), "type": "CustInvc", "foreigntotal": Decimal(r["total"]),
                     "foreignamountunpaid": Decimal(r["amountRemaining"])}
                    for r in self.records["invoice"].values()]

        return {"customer": lambda: rows("customer"), "job": lambda: rows("job"),
                "timebill": lambda: rows("timeBill"), "transaction": invoices}

    def _suiteql(self, request: Request) -> Response:
        if request.headers.get("prefer", "").lower() != "transient":
            return ns_error(400, "INVALID_HEADER", "SuiteQL requests need the header Prefer: "
                            "transient.", errorHeader="Prefer")
        body = self._body(request)
        if isinstance(body, Response):
            return body
        try:
            limit = int(request.arg("limit", "1000") or 1000)
            offset = int(request.arg("offset", "0") or 0)
        except ValueError:
            return ns_error(400, "INVALID_PARAMETER", "limit and offset must be integers.")
        if not 1 <= limit <= MAX_PAGE or offset < 0 or offset % limit:
            return ns_error(400, "INVALID_PARAMETER", f"limit must be 1 to {MAX_PAGE} and "
                            "offset a multiple of it.", errorQueryParam="limit")
        try:
            query = suiteql.parse(str(body.get("q") or ""))
            with self.lock:
                rows = suiteql.run(query, self._tables())
        except suiteql.SuiteQLError as exc:
            return ns_error(400, "INVALID_PARAMETER", str(exc), errorPath="q")
        page = rows[offset:offset + limit]
        more = offset + limit < len(rows)
        base = f"{self.url}/services/rest/query/v1/suiteql"
        links = [{"rel": "self", "href": f"{base}?limit={limit}&offset={offset}"}]
        if more:
            links.insert(0, {"rel": "next", "href": f"{base}?limit={limit}&offset="
                                                    f"{offset + limit}"})
        return Response(200, {"links": links, "count": len(page), "hasMore": more,
                              "items": page, "offset": offset, "totalResults": len(rows)})


def _columns(record: Mapping[str, Any]) -> dict[str, Any]:
    """A REST record as SuiteQL columns: lower-case names, references as their id."""
    out: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, Mapping):
            if "items" in value:
                continue  # a sublist is not a column
            value = value.get("id") or value.get("externalId")
        elif isinstance(value, datetime):
            value = value.astimezone(UTC).replace(tzinfo=None)  # the account's zone: UTC
        elif name == "tranDate" and isinstance(value, str):
            value = date.fromisoformat(value)
        elif name in ("hours", "rate", "total", "amountRemaining"):
            value = Decimal(str(value))
        out[name.lower()] = value
    return out
