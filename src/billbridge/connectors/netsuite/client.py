"""HTTP client of NetSuite's REST web services: the only code here that speaks
to NetSuite.

It composes the shared ``VendorHttp`` (pacing, the account's concurrency cap,
429s ridden out, statuses classified) with TBA signing, NetSuite's error
document (``o:errorDetails``), record writes (``PUT …/eid:{externalId}``
upserts, ``POST`` creates, ``PATCH`` updates), SuiteQL with paging, and the
asynchronous batch: a submit (``Prefer: respond-async``, a collection body of
up to 100 records, ``X-NetSuite-Idempotency-Key``) answered 202 with the job's
``Location``, then the records found by their key with one SuiteQL query. The
job's tasks are read only for records that did not appear, to name the error.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from billbridge.connectors.base import PermanentError, RateLimit, TransientError
from billbridge.connectors.http import VendorHttp, json_of
from billbridge.connectors.netsuite.tba import TbaAuth, TbaCredentials
from billbridge.connectors.paging import PageGuard
from billbridge.connectors.ratelimit import MonotonicClock, RealClock

log = logging.getLogger("billbridge.netsuite")

RECORD = "/services/rest/record/v1"
SUITEQL = "/services/rest/query/v1/suiteql"
GOVERNANCE = "/services/rest/system/v1/governanceLimits"
COLLECTION = "application/vnd.oracle.resource+json; type=collection"
BATCH_LIMIT = 100  # records in one asynchronous batch request
SUITEQL_PAGE = 1000  # rows in one SuiteQL page (NetSuite's maximum limit)
TIER_BASE_CONCURRENCY = 5  # the least any account has; used when the limit cannot be read
IDEMPOTENCY_NAMESPACE = uuid.UUID("8f7d1c52-5c0b-4d3e-9a57-2f4b7f1e6a10")

SUITEQL_TABLES: dict[str, tuple[str, str | None]] = {
    "customer": ("customer", None), "job": ("job", None), "timeBill": ("timebill", None),
    "invoice": ("transaction", "CustInvc")}
"""REST record type → (SuiteQL table, transaction type filter)."""

RETRYABLE_CODES = frozenset({"UNEXPECTED_ERROR", "CONCURRENCY_LIMIT_EXCEEDED",
                             "SSS_REQUEST_LIMIT_EXCEEDED", "RCRD_LOCKED_BY_WF"})


def error_details(body: Any) -> tuple[str, str]:
    """(first ``o:errorCode``, every ``detail``) of NetSuite's error document."""
    if isinstance(body, Mapping):
        details = [d for d in body.get("o:errorDetails") or [] if isinstance(d, Mapping)]
        if details:
            code = str(details[0].get("o:errorCode") or "ERROR")
            text = "; ".join(f"{d.get('o:errorCode')}: {d.get('detail')}"
                             + (f" (at {d['o:errorPath']})" if d.get("o:errorPath") else "")
                             for d in details)
            return code, text
        if body.get("title"):
            return f"HTTP_{body.get('status', 'ERROR')}", str(body["title"])
    return "ERROR", str(body)[:200]


def read_error(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP_{response.status_code}", response.text[:200]
    code, text = error_details(body)
    return (f"HTTP_{response.status_code}" if code == "ERROR" else code), text


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def last_segment(location: str | None) -> str | None:
    if not location:
        return None
    tail = location.rstrip("/").rsplit("/", 1)[-1]
    return tail or None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one record of a batch."""

    internal_id: str | None = None  # applied (created, updated, or found already there)
    code: str | None = None
    message: str | None = None
    retry: bool = False


@dataclass(frozen=True, slots=True)
class JobTiming:
    first_wait: float = 1.0  # after a submit, before the first look for the records
    poll: float = 2.0  # between looks while the job runs
    timeout: float = 120.0  # then the call fails as transient; the keys make a resend safe
    resubmits: int = 2  # identical resends of a submit whose answer was lost


class NetSuiteClient:
    """One NetSuite account. Thread-safe (``VendorHttp`` is)."""

    def __init__(self, base_url: str, credentials: TbaCredentials, *,
                 concurrency: int | None = None, rate_limit: RateLimit | None = None,
                 clock: MonotonicClock | None = None, timing: JobTiming | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/").removesuffix(RECORD).rstrip("/")
        self.auth = TbaAuth(credentials)
        self.rate_limit = rate_limit or RateLimit(10, 1, burst=10)
        self.clock = clock or RealClock()
        self.timing = timing or JobTiming()
        self._timeout = timeout
        self._transport = transport
        self._concurrency = concurrency
        self._http: VendorHttp | None = None
        self._lock = threading.Lock()

    # -- transport ---------------------------------------------------------------------
    def _make_http(self, concurrency: int | None) -> VendorHttp:
        return VendorHttp("netsuite", self.base_url, rate_limit=self.rate_limit,
                          read_error=read_error, concurrency=concurrency, clock=self.clock,
                          timeout=self._timeout, transport=self._transport,
                          headers={"Accept": "application/json"})

    @property
    def http(self) -> VendorHttp:
        """The transport, capped at the integration's concurrency limit; when
        none is configured it is read once from ``governanceLimits``."""
        with self._lock:
            if self._http is None:
                if self._concurrency is None:
                    self._concurrency = self._read_concurrency()
                self._http = self._make_http(self._concurrency)
            return self._http

    def _read_concurrency(self) -> int:
        probe = self._make_http(1)
        try:
            limits = probe.json("GET", GOVERNANCE, "governance limits", auth=self.auth)
        except (TransientError, PermanentError) as exc:
            log.warning("netsuite governance limits unreadable (%s); assuming the tier base of "
                        "%d concurrent requests", exc, TIER_BASE_CONCURRENCY)
            return TIER_BASE_CONCURRENCY
        finally:
            probe.close()
        return concurrency_from(limits)

    @property
    def requests_sent(self) -> int:
        return self._http.requests_sent if self._http is not None else 0

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, what, auth=self.auth, **kwargs)

    def governance_limits(self) -> dict[str, Any]:
        body: dict[str, Any] = json_of(self._request("GET", GOVERNANCE, "governance limits"))
        return body

    # -- single records ------------------------------------------------------------------
    def upsert(self, record_type: str, external_id: str, body: Mapping[str, Any]) -> str:
        """``PUT /{type}/eid:{externalId}``: the internal id of the record
        created or updated."""
        response = self._request("PUT", f"{RECORD}/{record_type}/eid:{external_id}",
                                 f"upsert {record_type}", json=dict(body))
        found = last_segment(response.headers.get("location"))
        if found is not None:
            return found
        # NetSuite documents no Location for an upsert: ask for the record.
        record = json_of(self._request("GET", f"{RECORD}/{record_type}/eid:{external_id}",
                                       f"read {record_type}", params={"fields": "id"}))
        return str(record["id"])

    def create(self, record_type: str, body: Mapping[str, Any]) -> str:
        """``POST /{type}`` (204 and the new record's ``Location``)."""
        response = self._request("POST", f"{RECORD}/{record_type}", f"create {record_type}",
                                 json=dict(body))
        created = last_segment(response.headers.get("location"))
        if created is None:
            raise PermanentError(f"netsuite create {record_type}: no Location in the answer",
                                 code="TARGET_PROTOCOL")
        return created

    def update(self, record_type: str, internal_id: str, body: Mapping[str, Any]) -> None:
        self._request("PATCH", f"{RECORD}/{record_type}/{internal_id}", f"update {record_type}",
                      json=dict(body))

    # -- SuiteQL ----------------------------------------------------------------------------
    def suiteql(self, query: str, *, limit: int = SUITEQL_PAGE, offset: int = 0
                ) -> dict[str, Any]:
        page: dict[str, Any] = json_of(self._request(
            "POST", SUITEQL, "suiteql", json={"q": query}, headers={"Prefer": "transient"},
            params={"limit": limit, "offset": offset}))
        return page

    def query_pages(self, query: str, *, limit: int = SUITEQL_PAGE
                    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of rows, following ``hasMore`` with ``offset``; an offset
        offered twice is an error, never a loop."""
        offset, guard = 0, PageGuard("netsuite suiteql")
        while True:
            guard.once(offset, f"offset {offset}")
            page = self.suiteql(query, limit=limit, offset=offset)
            rows = [dict(r) for r in page.get("items") or [] if isinstance(r, Mapping)]
            yield rows
            if not page.get("hasMore") or not rows:
                return
            offset += len(rows)

    def query_all(self, query: str) -> list[dict[str, Any]]:
        return [row for page in self.query_pages(query) for row in page]

    def find(self, record_type: str, column: str, values: Sequence[str]) -> dict[str, str]:
        """Internal ids of the records whose ``column`` (``externalid`` or a
        marker field) holds one of ``values``: value → id."""
        table, transaction_type = SUITEQL_TABLES[record_type]
        found: dict[str, str] = {}
        for start in range(0, len(values), SUITEQL_PAGE):
            chunk = values[start:start + SUITEQL_PAGE]
            where = f"{column} IN ({', '.join(sql_literal(v) for v in chunk)})"
            if transaction_type:
                where = f"type = {sql_literal(transaction_type)} AND {where}"
            for row in self.query_all(f"SELECT id, {column} FROM {table} WHERE {where}"):
                found[str(row.get(column))] = str(row.get("id"))
        return found

    # -- the asynchronous batch ----------------------------------------------------------
    def submit(self, method: str, record_type: str, items: Sequence[Mapping[str, Any]],
               key: str) -> str:
        """Submit a batch; the job's path. A submit whose answer was lost is
        sent again as it was, with the same idempotency key: NetSuite then
        names the job the first one started (400 ``IDEMPOTENCY_ERROR`` with
        its ``Location``) instead of starting a second."""
        headers = {"Prefer": "respond-async", "Content-Type": COLLECTION,
                   "X-NetSuite-Idempotency-Key": key}
        what = f"batch {method} {record_type}"
        for attempt in range(self.timing.resubmits + 1):
            try:
                response = self._request(method, f"{RECORD}/{record_type}", what,
                                         expected=(400,), headers=headers,
                                         json={"items": [dict(i) for i in items]})
            except TransientError:
                if attempt == self.timing.resubmits:
                    raise
                continue
            location = response.headers.get("location")
            if response.status_code == 400:
                code, _text = read_error(response)
                if code != "IDEMPOTENCY_ERROR" or not location:
                    self.http.raise_for(response, what)
            if not location:
                raise PermanentError(f"netsuite {what}: no job Location in the answer",
                                     code="TARGET_PROTOCOL")
            return httpx.URL(location).path
        raise AssertionError("unreachable")  # the loop returns or raises

    def job(self, path: str) -> dict[str, Any]:
        body: dict[str, Any] = json_of(self._request("GET", path, "async job"))
        return body

    def failures(self, job_path: str, positions: Sequence[int]) -> dict[int, Outcome]:
        """Why the records at ``positions`` (0-based, in submit order) did not
        appear: their tasks' results. A task per record, in submit order."""
        tasks = json_of(self._request("GET", f"{job_path}/task", "async job tasks"))
        ids = [str(t.get("id")) for t in tasks.get("items") or [] if isinstance(t, Mapping)]
        out: dict[int, Outcome] = {}
        for position in positions:
            if position >= len(ids):
                out[position] = Outcome(retry=True, message="the job has no task for this record")
                continue
            result = json_of(self._request("GET", f"{job_path}/task/{ids[position]}/result",
                                           "async task result"))
            if isinstance(result, Mapping) and result.get("o:errorDetails"):
                code, text = error_details(result)
                out[position] = Outcome(code=code, message=text, retry=code in RETRYABLE_CODES)
            else:
                out[position] = Outcome(retry=True, message="the task succeeded but the record "
                                        "was not found; looking again later")
        return out

    def run_batch(self, method: str, record_type: str, items: Sequence[Mapping[str, Any]],
                  column: str, keys: Sequence[str], idempotency_key: str) -> list[Outcome]:
        """Submit ``items`` and wait for them: one outcome per item, in order.

        ``keys[i]`` is what item i holds in ``column`` (its external id or its
        marker), by which it is found once the job has run.
        """
        job_path = self.submit(method, record_type, items, idempotency_key)
        waited = 0.0
        self.clock.sleep(self.timing.first_wait)
        while True:
            found = self.find(record_type, column, keys)
            missing = [i for i, k in enumerate(keys) if k not in found]
            if not missing:
                return [Outcome(internal_id=found[k]) for k in keys]
            job = self.job(job_path)
            if job.get("completed"):
                # It may have finished since the look: look again before asking why.
                found.update(self.find(record_type, column, [keys[i] for i in missing]))
                missing = [i for i, k in enumerate(keys) if k not in found]
                failed = self.failures(job_path, missing) if missing else {}
                return [Outcome(internal_id=found[k]) if k in found else failed[i]
                        for i, k in enumerate(keys)]
            if waited >= self.timing.timeout:
                raise TransientError(f"netsuite batch {record_type}: job {job_path} still "
                                     f"{job.get('progress')} after {waited:.0f} s",
                                     code="JOB_RUNNING", retry_after=self.timing.poll)
            self.clock.sleep(self.timing.poll)
            waited += self.timing.poll


def batch_key(method: str, record_type: str, command_keys: Sequence[str]) -> str:
    """A batch's ``X-NetSuite-Idempotency-Key`` (a UUID, as NetSuite asks):
    derived from what it carries, so the same batch always has the same key."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE,
                          f"{method} {record_type} {','.join(sorted(command_keys))}"))


def concurrency_from(limits: Mapping[str, Any]) -> int:
    """The requests this integration may have in flight, from
    ``governanceLimits``: its own allocation when it has one, else the
    account's unallocated share."""
    kind = limits.get("integrationLimitType")
    value = limits.get("integrationConcurrencyLimit") if kind == "integrationSpecific" \
        else limits.get("accountUnallocatedConcurrencyLimit",
                        limits.get("accountConcurrencyLimit"))
    try:
        return max(1, int(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return TIER_BASE_CONCURRENCY
