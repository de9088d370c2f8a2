"""An emulator of the subset of Replicon's service API that billbridge uses:
``POST /{tenant}/services/<Service>1.svc/<Operation>`` with JSON bodies and
answers wrapped in ``"d"``; the list services' ``GetData`` (page, pagesize,
columnUris, sort, filterExpression) over timesheets and expense sheets;
``GetTimesheetSummary``, ``GetStandardTimesheet2``, ``GetExpenseSheetDetails``,
``BulkGetProjectDetails3`` and ``CreateProjectOrApplyModifications``; the
error envelope ``{"error": {"correlationId", "details": {"displayText"},
"type"}}`` on every failure (faults injected by the base class included); a
bearer token; 429s past a rolling per-minute limit, with no ``Retry-After``
unless one is set (none is documented, more-vendors.md section 4).

It does not deduplicate ``CreateProjectOrApplyModifications`` by
``unitOfWorkId``: Replicon documents that only for ``CreateAccessToken2``.
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from billbridge.connectors.replicon.client import APPLICATION_HEADER
from billbridge.connectors.replicon.emulator.lists import LISTS, get_data
from billbridge.connectors.replicon.emulator.tenant import Sheet, Tenant
from billbridge.connectors.replicon.mapping import duration_of
from billbridge.emulation.limits import admit
from billbridge.emulation.server import ADMIN_PREFIX, EmulatorServer, Request, Response


def envelope(status: int, kind: str, text: str,
             headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, {"error": {"correlationId": str(uuid.uuid4()),
                                       "details": {"displayText": text}, "type": kind}},
                    dict(headers or {}))


class Fault(Exception):
    """A service fault: answered in Replicon's envelope with ``fault_status``."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind


class RepliconEmulator(EmulatorServer):
    def __init__(self, *, token: str | None = "replicon-token", tenant: str = "acme",
                 port: int = 0, per_minute: int = 1000, retry_after: int | None = None,
                 fault_status: int = 500, require_application: bool = False) -> None:
        super().__init__(port=port, token=None)  # Replicon's envelope on a refusal, below
        self.access_token = token
        self.tenant = Tenant(tenant)
        self.per_minute = per_minute
        self.retry_after = retry_after
        self.fault_status = fault_status  # the status of a service fault: undocumented
        self.require_application = require_application  # unverified: off by default
        self.ignore_page = False  # a broken server for pagination-termination tests
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (Service.Operation, body)
        self._window = collections.deque[float]()
        self._operations: dict[str, Callable[[dict[str, Any]], Any]] = {
            "TimesheetListService1.GetData": lambda b: self._list("timesheets", b),
            "ExpenseSheetListService1.GetData": lambda b: self._list("expense_sheets", b),
            "TimesheetService1.GetTimesheetSummary": self._summary,
            "TimesheetService1.GetStandardTimesheet2": lambda b: self.tenant.standard_timesheet(
                self._sheet(self.tenant.timesheets, b, "timesheetUri")),
            "ExpenseService1.GetExpenseSheetDetails": lambda b: self.tenant.expense_details(
                self._sheet(self.tenant.expense_sheets, b, "expenseSheetUri")),
            "ProjectService1.BulkGetProjectDetails3": self._project_details,
            "ProjectService1.CreateProjectOrApplyModifications": self._apply_project,
        }
        self.route("POST", f"/{tenant}/services/{{service}}.svc/{{operation}}", self._service)

    @property
    def root(self) -> str:
        """The tenant's ``applicationRootUrl``: the connection's base URL."""
        return f"{self.url}/{self.tenant.slug}/"

    # -- the door --------------------------------------------------------------------------
    def dispatch(self, request: Request, *, drop: Callable[[], None]) -> Response | None:
        if not request.path.startswith(ADMIN_PREFIX):
            if self.access_token is not None and \
                    request.headers.get("authorization") != f"Bearer {self.access_token}":
                return envelope(401, "AuthenticationFailedError1",
                                "The access token is missing, expired or revoked.")
            if self.require_application and not request.headers.get(APPLICATION_HEADER.lower()):
                return envelope(400, "MissingRequiredParameterError1",
                                f"The {APPLICATION_HEADER} header is required.")
            with self.lock:
                wait = admit(self._window, self.per_minute, 60.0, time.monotonic())
            if wait is not None:
                headers = {} if self.retry_after is None else {"Retry-After":
                                                               str(self.retry_after)}
                return envelope(429, "RateLimitExceededError1",
                                "Too many requests: please slow down.", headers)
        response = super().dispatch(request, drop=drop)
        if response is None or not isinstance(response.body, dict):
            return response
        inner = response.body.get("error")
        if isinstance(inner, dict) and "code" in inner:  # the base class's injected faults
            if response.status == 429:  # Replicon documents no Retry-After: one only if set
                return envelope(429, "RateLimitExceededError1", str(inner.get("message")),
                                {} if self.retry_after is None
                                else {"Retry-After": str(self.retry_after)})
            return envelope(response.status, "ServiceUnavailable1", str(inner.get("message")),
                            response.headers)
        return response

    def _service(self, request: Request) -> Response:
        name = f"{request.params['service']}.{request.params['operation']}"
        operation = self._operations.get(name)
        if operation is None:
            return envelope(404, "UnknownOperationError1", f"No operation {name}.")
        try:
            body = request.json()
        except ValueError:
            return envelope(400, "InvalidJsonError1", "The request body is not JSON.")
        if not isinstance(body, dict):
            return envelope(400, "InvalidJsonError1", "The request body is not an object.")
        with self.lock:
            self.calls.append((name, body))
            try:
                return Response(200, {"d": operation(body)})
            except Fault as fault:
                return envelope(self.fault_status, fault.kind, str(fault))

    # -- operations ------------------------------------------------------------------------
    def _list(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        sheets = self.tenant.timesheets if kind == "timesheets" else self.tenant.expense_sheets
        try:
            return get_data(LISTS[kind], self.tenant, list(sheets.values()), body,
                            ignore_page=self.ignore_page)
        except ValueError as exc:
            raise Fault("InvalidListRequestError1", str(exc)) from None

    @staticmethod
    def _sheet(sheets: Mapping[str, Sheet], body: Mapping[str, Any], key: str) -> Sheet:
        uri = body.get(key)
        if not uri:
            raise Fault("MissingRequiredParameterError1", f"{key} is required.")
        if uri not in sheets:
            raise Fault("InvalidUriError1", f"No object has the uri {uri}.")
        return sheets[str(uri)]

    def _summary(self, body: dict[str, Any]) -> dict[str, Any]:
        """``GetTimesheetSummary``'s ``d``: status, totals by project and date."""
        sheet = self._sheet(self.tenant.timesheets, body, "timesheetUri")
        by_project: dict[str, Decimal] = collections.defaultdict(Decimal)
        by_date: dict[str, Decimal] = collections.defaultdict(Decimal)
        billable = Decimal(0)
        for row in sheet.lines:
            for day, cell in row["cells"].items():
                by_project[row["project"]] += cell["hours"]
                by_date[day] += cell["hours"]
                billable += cell["hours"] if row["billable"] else 0
        total = sum(by_date.values(), Decimal(0))
        zero = duration_of(Decimal(0))
        status = self.tenant.status_ref(sheet.status)
        return {
            "approvalStatus": status, "timesheetStatus": status,
            "totalTimeDuration": duration_of(total), "workingTimeDuration": duration_of(total),
            "billableTimeDuration": duration_of(billable),
            "nonBillableTimeDuration": duration_of(total - billable),
            "breakDuration": zero, "overtimeDuration": zero, "timeOffTimeDuration": zero,
            "bankedTimeDuration": zero, "dueDate": self.tenant.standard_timesheet(sheet)[
                "dueDate"], "attestationStatusUri": None,
            "actualPayableTimeCalculationStatus": "urn:replicon:calculation-status:complete",
            "actualsByProject": [{"project": self.tenant.project_ref(p),
                                  "totalTimeDuration": duration_of(h)}
                                 for p, h in sorted(by_project.items())],
            "actualsByDate": [{"date": {"year": int(d[:4]), "month": int(d[5:7]),
                                        "day": int(d[8:])},
                               "totalTimeDuration": duration_of(h),
                               "workingTimeDuration": duration_of(h), "breakDuration": zero,
                               "timeOffDuration": zero, "hasComments": False,
                               "isHolidayDayOff": False, "isWeeklyDayOff": False}
                              for d, h in sorted(by_date.items())],
            "actualsByActivity": [], "actualsByBillingRate": [], "actualsByPaycode": [],
            "scriptCalculationStatus": None}

    def _project_details(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """``BulkGetProjectDetails3``: one answer per request, in order; an
        unknown project is that answer's ``error``, not the call's."""
        answers = []
        for ask in body.get("projects") or []:
            ask = ask if isinstance(ask, dict) else {}
            found = next((p for p in self.tenant.projects.values()
                          if any(ask.get(k) and p.get(k) == ask[k]
                                 for k in ("uri", "code", "name"))), None)
            answer: dict[str, Any] = {"parameterCorrelationId": ask.get("parameterCorrelationId")}
            if found is None:
                answer["error"] = {"type": "InvalidProjectReferenceError1",
                                   "displayText": "No project matches the reference."}
            else:
                answer["projectDetails"] = {**self.tenant.project_ref(found["uri"]),
                                            "description": found["description"],
                                            "clients": [], "customFields": []}
            answers.append(answer)
        return answers

    def _apply_project(self, body: dict[str, Any]) -> dict[str, Any]:
        changes = body.get("modifications") or {}
        target = body.get("target") or None
        if target is None:
            name = (changes.get("nameToApply") or {}).get("value")
            if not name:
                raise Fault("ValidationError1", "A new project needs nameToApply.")
            project = self.tenant.add_project(str(name))
        else:
            known = self.tenant.projects.get(str(target.get("uri")))
            if known is None:
                raise Fault("InvalidUriError1", f"No project has the uri {target.get('uri')}.")
            project = known
        for key, field in (("nameToApply", "name"), ("codeToApply", "code"),
                           ("descriptionToApply", "description")):
            if isinstance(changes.get(key), dict):
                project[field] = changes[key].get("value")
        project["displayText"] = project["name"]
        return self.tenant.project_ref(project["uri"])
