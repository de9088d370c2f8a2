"""HTTP client of Replicon's service API: the only code here that speaks to it.

Every call is ``POST {root}services/<Service>1.svc/<Operation>`` with a JSON
body, answered wrapped in ``"d"`` (more-vendors.md section 4); ``root`` is the
tenant's ``applicationRootUrl``, which ``DiscoveryService1.svc/
GetMyTenantEndpointDetails`` on the global host gives. A bearer token (an
access token of ``CreateAccessToken2`` or OAuth's) authenticates every call.

Errors come in one envelope, ``{"error": {"correlationId", "details":
{"displayText"}, "type"}}``, and the status Replicon sends with it is not
documented: a fault is therefore classified by its ``type`` first (a
validation or permission fault is permanent whatever the status), then by the
status (429 and 5xx transient). Replicon's rate limits are rolling per minute
and per hour and "subject to change", and no ``Retry-After`` is documented:
both windows are settings, paced by two token buckets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from billbridge.connectors.base import (
    OutcomeKind,
    PermanentError,
    RateLimit,
    TransientError,
    classify_http,
)
from billbridge.connectors.http import VendorHttp, error_object, json_of
from billbridge.connectors.ratelimit import MonotonicClock, TokenBucket, rolling_window

DEFAULT_BASE_URL = "https://na1.replicon.com/"
# [RRL] gives "1000 requests per minute, 10000 per hour" as an example of limits
# that "are subject to change": the defaults stay at half of them.
REQUESTS_PER_MINUTE = 500
REQUESTS_PER_HOUR = 5000
PAGE_SIZE = 100  # the list services' page size; their maximum is unverified
APPLICATION_HEADER = "X-Replicon-Application"  # replicon-handler sends it; required: unverified

# Words in an error ``type`` that say retrying the same request cannot help
# ([RERR]: e.g. MissingRequiredParameterError1). Anything else answered with
# a 5xx or 429 is retried; a connection option adds types of its own.
PERMANENT_WORDS = ("Validation", "Invalid", "Missing", "Required", "NotFound", "Authorization",
                   "Authentication", "Permission", "Denied", "Duplicate", "Conflict")


def read_error(response: httpx.Response) -> tuple[str, str]:
    """(error type, display text with its correlation id) of Replicon's envelope."""
    body = error_object(response)
    if isinstance(body, tuple):
        return body
    inner = body.get("error")
    if not isinstance(inner, dict):
        return f"HTTP_{response.status_code}", str(body)[:200]
    details = inner.get("details")
    text = details.get("displayText") if isinstance(details, dict) else None
    kind = str(inner.get("type") or f"HTTP_{response.status_code}")
    correlation = inner.get("correlationId")
    return kind, (f"{text or kind} (correlation id {correlation})" if correlation
                  else str(text or kind))


def is_permanent(kind: str, extra: Iterable[str] = ()) -> bool:
    return kind in set(extra) or any(word in kind for word in PERMANENT_WORDS)


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a ``*ListService1.svc/GetData`` answer: its header and its
    rows, each row a mapping from column uri to the row's cell in it."""

    header: list[str]
    rows: list[dict[str, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def parse(cls, body: Any, what: str) -> ListPage:
        data = body.get("d") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise PermanentError(f"Replicon {what}: not a list answer: {str(body)[:200]}",
                                 code="UNEXPECTED_ANSWER")
        header = [str(h.get("uri")) for h in data.get("header") or [] if isinstance(h, dict)]
        rows = []
        for row in data["rows"]:
            cells = row.get("cells") if isinstance(row, dict) else None
            if isinstance(cells, list):
                rows.append({uri: cell for uri, cell in zip(header, cells, strict=False)
                             if isinstance(cell, dict)})
        return cls(header, rows)


class RepliconClient:
    """One Replicon tenant reached with one token. Thread-safe: a poller and
    the dispatcher share it and keep within the tenant's limits together."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, token: str,
                 application: str = "billbridge", per_minute: int = REQUESTS_PER_MINUTE,
                 per_hour: int = REQUESTS_PER_HOUR, permanent_types: Sequence[str] = (),
                 clock: MonotonicClock | None = None, max_429_retries: int = 5,
                 max_retry_wait: float = 60.0, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.rate_limit: RateLimit = rolling_window(per_minute, 60.0)
        headers = {"Authorization": f"Bearer {token}"}
        self.http = VendorHttp("Replicon", base_url or DEFAULT_BASE_URL,
                               rate_limit=self.rate_limit, authorise=lambda: headers,
                               read_error=read_error, clock=clock,
                               max_429_retries=max_429_retries, max_retry_wait=max_retry_wait,
                               timeout=timeout, transport=transport,
                               headers={APPLICATION_HEADER: application,
                                        "Accept": "application/json"})
        self.hourly = TokenBucket(rolling_window(per_hour, 3600.0), self.http.clock)
        self._hour_pace = threading.Lock()
        self.permanent_types = tuple(permanent_types)

    def close(self) -> None:
        self.http.close()

    def call(self, service: str, operation: str, body: Mapping[str, Any]) -> Any:
        """``POST services/<service>.svc/<operation>``; the answer's ``d``."""
        what = f"{service}.{operation}"
        with self._hour_pace:
            self.hourly.take()
        response = self.http.request("POST", f"/services/{service}.svc/{operation}",
                                     f"Replicon {what}", json=dict(body),
                                     expected=range(400, 600))
        if response.status_code >= 400:
            self.raise_for(response, what)
        answer = json_of(response)
        if not isinstance(answer, dict) or "d" not in answer:
            raise PermanentError(f"Replicon {what}: the answer has no 'd': {str(answer)[:200]}",
                                 code="UNEXPECTED_ANSWER")
        return answer["d"]

    def raise_for(self, response: httpx.Response, what: str) -> None:
        """The envelope's type decides before the status does (see the module)."""
        kind, message = read_error(response)
        text = f"Replicon {what}: HTTP {response.status_code} {kind}: {message}"
        outcome = classify_http(response.status_code, response.headers)
        if outcome.kind is OutcomeKind.CONFIGURATION:
            raise PermanentError(text, code="TARGET_AUTH")
        if is_permanent(kind, self.permanent_types):
            raise PermanentError(text, code=kind)
        if outcome.kind is OutcomeKind.TRANSIENT:
            raise TransientError(text, code=kind, retry_after=outcome.retry_after)
        raise PermanentError(text, code=kind)

    # -- the operations billbridge uses ---------------------------------------------------
    def list_page(self, service: str, body: Mapping[str, Any]) -> ListPage:
        """One page of ``<service>.svc/GetData`` (``page``, ``pagesize``,
        ``columnUris``, ``sort``, ``filterExpression``)."""
        answer = self.call(service, "GetData", body)
        return ListPage.parse({"d": answer}, f"{service}.GetData")

    def timesheet_summary(self, timesheet_uri: str) -> dict[str, Any]:
        """``GetTimesheetSummary``: the timesheet's approval status and totals."""
        return _object(self.call("TimesheetService1", "GetTimesheetSummary",
                                 {"timesheetUri": timesheet_uri}), "GetTimesheetSummary")

    def standard_timesheet(self, timesheet_uri: str) -> dict[str, Any]:
        """``GetStandardTimesheet2``: the owner, date range and rows of cells."""
        return _object(self.call("TimesheetService1", "GetStandardTimesheet2",
                                 {"timesheetUri": timesheet_uri}), "GetStandardTimesheet2")

    def expense_sheet(self, expense_sheet_uri: str) -> dict[str, Any]:
        """``GetExpenseSheetDetails``: the owner, approval status and entries."""
        return _object(self.call("ExpenseService1", "GetExpenseSheetDetails",
                                 {"expenseSheetUri": expense_sheet_uri}),
                       "GetExpenseSheetDetails")

    def projects_by_code(self, codes: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """``BulkGetProjectDetails3`` by code: each code's project details, or
        None when Replicon answers that code with an error (no such project)."""
        answer = self.call("ProjectService1", "BulkGetProjectDetails3", {
            "projects": [{"code": code, "parameterCorrelationId": code} for code in codes]})
        found: dict[str, dict[str, Any] | None] = dict.fromkeys(codes)
        for item in answer if isinstance(answer, list) else []:
            details = item.get("projectDetails") if isinstance(item, dict) else None
            if isinstance(details, dict) and details.get("uri"):
                found[str(item.get("parameterCorrelationId"))] = details
        return found

    def apply_project(self, target: Mapping[str, Any] | None, modifications: Mapping[str, Any],
                      unit_of_work: str) -> dict[str, Any]:
        """``CreateProjectOrApplyModifications``: creates the project when
        ``target`` is None, else changes it; the answer is its reference."""
        return _object(self.call("ProjectService1", "CreateProjectOrApplyModifications", {
            "target": dict(target) if target else None, "modifications": dict(modifications),
            "unitOfWorkId": unit_of_work}), "CreateProjectOrApplyModifications")


def _object(answer: Any, what: str) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise PermanentError(f"Replicon {what}: expected an object, got {str(answer)[:200]}",
                             code="UNEXPECTED_ANSWER")
    return answer
