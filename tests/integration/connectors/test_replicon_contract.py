"""Replicon has no official Python client, so the client and the emulator are
held to the requests and responses of Replicon's published connector
description (tests/replicon_docs.py), four ways: the client's requests have
the documented fields and JSON types; the client reads the documented
answers (served as documented by an in-process transport); the emulator
accepts the documented requests; its answers have the documented fields and
JSON types. The error envelope is classified by its type, not only its status.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from billbridge.connectors.base import PermanentError, TransientError
from billbridge.connectors.replicon.client import RepliconClient
from billbridge.connectors.replicon.emulator import RepliconEmulator
from billbridge.connectors.replicon.mapping import APPROVED, status_of
from billbridge.connectors.replicon.source import TIMESHEETS, RepliconSource
from billbridge.connectors.replicon.target import RepliconTarget
from replicon_docs import (
    BULK_GET_PROJECT_DETAILS3_REQUEST,
    BULK_GET_PROJECT_DETAILS3_RESPONSE,
    CREATE_PROJECT_OR_APPLY_MODIFICATIONS_REQUEST,
    CREATE_PROJECT_OR_APPLY_MODIFICATIONS_RESPONSE,
    ERROR,
    GET_TIMESHEET_SUMMARY_REQUEST,
    GET_TIMESHEET_SUMMARY_RESPONSE,
    LIST_GET_DATA_REQUEST,
    LIST_GET_DATA_RESPONSE,
    PROJECT_DETAILS_FIELDS,
)

TOKEN = "contract-token"
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
              dict: "object", type(None): "null"}


def same_shape(documented: Any, served: Any, where: str = "") -> list[str]:
    """Differences, recursively: a documented field missing, or of another JSON type."""
    if documented is None or served is None:
        return []
    if JSON_TYPES[type(documented)] != JSON_TYPES[type(served)]:
        return [f"{where or 'the body'}: {JSON_TYPES[type(served)]}, documented "
                f"{JSON_TYPES[type(documented)]}"]
    if isinstance(documented, dict):
        problems = [f"{where}.{k} missing" for k in documented if k not in served]
        for key, value in documented.items():
            if key in served:
                problems += same_shape(value, served[key], f"{where}.{key}")
        return problems
    if isinstance(documented, list) and documented and served:
        return same_shape(documented[0], served[0], f"{where}[0]")
    return []


def request_problems(documented: Any, sent: Any, where: str = "") -> list[str]:
    """A request's fields the description does not have, or sent with another
    JSON type (every field of a documented request body is optional)."""
    if documented is None or sent is None:
        return []
    if JSON_TYPES[type(documented)] != JSON_TYPES[type(sent)]:
        return [f"{where or 'the body'}: {JSON_TYPES[type(sent)]}, documented "
                f"{JSON_TYPES[type(documented)]}"]
    if isinstance(documented, dict) and documented:
        return [p for k, v in sent.items() for p in (
            request_problems(documented[k], v, f"{where}.{k}") if k in documented
            else [f"{where}.{k} undocumented"])]
    if isinstance(documented, list) and documented:
        return [p for i, v in enumerate(sent) for p in
                request_problems(documented[0], v, f"{where}[{i}]")]
    return []


@pytest.fixture
def replicon() -> Iterator[RepliconEmulator]:
    with RepliconEmulator(token=TOKEN) as em:
        tenant = em.tenant
        alice = tenant.add_user("alice", "Ng, Alice", key=7)
        project = tenant.add_project("Globex ERP rollout", "GLX-001", key=12)
        sheet = tenant.timesheet(alice, date(2026, 3, 2), date(2026, 3, 8), key=3)
        tenant.log(sheet, project["uri"], date(2026, 3, 2), Decimal("8.5"))
        tenant.set_status(sheet, APPROVED)
        yield em  # type: ignore[misc]


def client(base: str, **kwargs: Any) -> RepliconClient:
    return RepliconClient(base, token=TOKEN, per_minute=100_000, per_hour=100_000, **kwargs)


def documented_server(answers: Mapping[str, Any], status: int = 200) -> httpx.MockTransport:
    """Replicon answering every operation with its documented response."""
    def answer(request: httpx.Request) -> httpx.Response:
        operation = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(status, json=answers[operation])
    return httpx.MockTransport(answer)


# -- the client's requests ---------------------------------------------------------------
def test_the_clients_requests_carry_only_documented_fields_of_documented_types(
        replicon: RepliconEmulator) -> None:
    source = RepliconSource(client(replicon.root), expense_sheets=None)
    list(source.poll(None))
    RepliconTarget(client(replicon.root)).client.apply_project(
        {"uri": "urn:replicon-tenant:acme:project:12"},
        {"descriptionToApply": {"value": "ERP project: L-1"}}, "billbridge-k1")
    client(replicon.root).projects_by_code(["GLX-001"])
    sent = {name: body for name, body in replicon.calls}
    checks = {
        "TimesheetListService1.GetData": LIST_GET_DATA_REQUEST,
        "TimesheetService1.GetTimesheetSummary": GET_TIMESHEET_SUMMARY_REQUEST,
        "ProjectService1.BulkGetProjectDetails3": BULK_GET_PROJECT_DETAILS3_REQUEST,
        "ProjectService1.CreateProjectOrApplyModifications":
            CREATE_PROJECT_OR_APPLY_MODIFICATIONS_REQUEST}
    for name, documented in checks.items():
        assert name in sent, f"the client never called {name}"
        assert request_problems(documented, sent[name]) == [], name


# -- the documented answers, read by the client -------------------------------------------
def test_the_client_reads_the_documented_answers() -> None:
    http = client("https://na1.replicon.com/acme/", transport=documented_server({
        "GetTimesheetSummary": GET_TIMESHEET_SUMMARY_RESPONSE,
        "GetData": LIST_GET_DATA_RESPONSE,
        "BulkGetProjectDetails3": BULK_GET_PROJECT_DETAILS3_RESPONSE,
        "CreateProjectOrApplyModifications": CREATE_PROJECT_OR_APPLY_MODIFICATIONS_RESPONSE}))
    summary = http.timesheet_summary(GET_TIMESHEET_SUMMARY_REQUEST["timesheetUri"])
    assert status_of(summary["approvalStatus"]) == "approved"
    page = http.list_page("UserListService1", LIST_GET_DATA_REQUEST)
    assert page.rows == [{"urn:replicon:user-list-column:user":
                          LIST_GET_DATA_RESPONSE["d"]["rows"][0]["cells"][0]}]
    found = http.projects_by_code(["NOPE-1", "GLX-001"])
    assert found["NOPE-1"] is None  # its answer is an error, not the call's
    assert found["GLX-001"] is not None and found["GLX-001"]["uri"].endswith(":project:12")
    created = http.apply_project(None, {"nameToApply": {"value": "X"}}, "u-1")
    assert created["code"] == "GLX-001"


# -- the emulator: documented requests accepted, documented answers given -------------------
def post(em: RepliconEmulator, path: str, body: Mapping[str, Any],
         token: str = TOKEN) -> httpx.Response:
    return httpx.post(f"{em.root}services/{path}", json=dict(body),
                      headers={"Authorization": f"Bearer {token}"})


def test_the_emulator_takes_the_documented_requests_and_answers_in_their_shape(
        replicon: RepliconEmulator) -> None:
    summary = post(replicon, "TimesheetService1.svc/GetTimesheetSummary",
                   GET_TIMESHEET_SUMMARY_REQUEST)
    assert summary.status_code == 200, summary.text
    assert same_shape(GET_TIMESHEET_SUMMARY_RESPONSE["d"] | {"scriptCalculationStatus": None},
                      summary.json()["d"]) == []
    listed = post(replicon, "TimesheetListService1.svc/GetData", {
        **LIST_GET_DATA_REQUEST, "columnUris": [TIMESHEETS.sheet_column], "filterExpression": None})
    assert listed.status_code == 200, listed.text
    assert same_shape(LIST_GET_DATA_RESPONSE["d"], listed.json()["d"]) == []
    assert listed.json()["d"]["rows"][0]["cells"][0]["uri"].endswith(":timesheet:3")
    details = post(replicon, "ProjectService1.svc/BulkGetProjectDetails3",
                   {"projects": [{"code": "NOPE-1", "parameterCorrelationId": "NOPE-1"},
                                 *BULK_GET_PROJECT_DETAILS3_REQUEST["projects"]]}).json()["d"]
    assert same_shape(BULK_GET_PROJECT_DETAILS3_RESPONSE["d"][0]["error"], details[0]["error"]) \
        == [] and "projectDetails" not in details[0]
    assert {k: details[1]["projectDetails"][k] for k in PROJECT_DETAILS_FIELDS} == {
        k: BULK_GET_PROJECT_DETAILS3_RESPONSE["d"][1]["projectDetails"][k]
        for k in PROJECT_DETAILS_FIELDS}
    applied = post(replicon, "ProjectService1.svc/CreateProjectOrApplyModifications",
                   CREATE_PROJECT_OR_APPLY_MODIFICATIONS_REQUEST)
    assert applied.status_code == 200, applied.text
    assert applied.json() == CREATE_PROJECT_OR_APPLY_MODIFICATIONS_RESPONSE
    assert replicon.tenant.project_by_code("GLX-001")["description"] == "ERP project: L-000002"


def test_every_refusal_is_in_the_documented_error_envelope(replicon: RepliconEmulator) -> None:
    replicon.faults.script(["503", "429"])
    answers = [post(replicon, "TimesheetService1.svc/GetTimesheetSummary", {}),
               post(replicon, "TimesheetService1.svc/GetTimesheetSummary", {}),
               post(replicon, "TimesheetService1.svc/GetTimesheetSummary", {}),
               post(replicon, "TimesheetService1.svc/GetTimesheetSummary", {}, token="wrong")]
    assert [a.status_code for a in answers] == [503, 429, 500, 401]
    for answer in answers:
        assert same_shape(ERROR, answer.json()) == [], answer.text
    assert answers[2].json()["error"]["type"] == ERROR["error"]["type"]
    assert "retry-after" not in answers[1].headers  # none is documented


# -- the envelope classified --------------------------------------------------------------------
@pytest.mark.parametrize(("status", "kind", "transient"), [
    (500, "MissingRequiredParameterError1", False),  # a fault of the request, whatever the status
    (500, "InvalidUriError1", False),
    (503, "ServiceUnavailable1", True),
    (500, "UnexpectedServerError1", True),
    (400, "SomethingElse1", False),
])
def test_a_fault_is_classified_by_its_type_before_its_status(
        status: int, kind: str, transient: bool) -> None:
    body = json.loads(json.dumps(ERROR))
    body["error"]["type"] = kind
    http = client("https://na1.replicon.com/acme/",
                  transport=documented_server({"GetTimesheetSummary": body}, status))
    with pytest.raises((TransientError, PermanentError)) as raised:
        http.timesheet_summary("urn:replicon-tenant:acme:timesheet:3")
    assert isinstance(raised.value, TransientError) is transient
    assert raised.value.code == kind
    assert "correlation id 0c5b2c4e" in str(raised.value)


def test_a_type_named_permanent_by_the_connection_is_not_retried() -> None:
    body = json.loads(json.dumps(ERROR))
    body["error"]["type"] = "QuotaPolicyError1"
    transport = documented_server({"GetTimesheetSummary": body}, 503)
    with pytest.raises(TransientError):
        client("https://na1.replicon.com/acme/", transport=transport).timesheet_summary("u")
    with pytest.raises(PermanentError):
        client("https://na1.replicon.com/acme/", transport=transport,
               permanent_types=["QuotaPolicyError1"]).timesheet_summary("u")


def test_a_bad_token_is_a_configuration_error() -> None:
    http = client("https://na1.replicon.com/acme/",
                  transport=documented_server({"GetTimesheetSummary": ERROR}, 401))
    with pytest.raises(PermanentError) as raised:
        http.timesheet_summary("u")
    assert raised.value.code == "TARGET_AUTH"


def test_past_its_rolling_limit_the_emulator_answers_429_in_the_envelope() -> None:
    with RepliconEmulator(token=TOKEN, per_minute=2) as em:
        answers = [post(em, "TimesheetService1.svc/GetTimesheetSummary", {}) for _ in range(3)]
    assert [a.status_code for a in answers] == [500, 500, 429]
    assert answers[2].json()["error"]["type"] == "RateLimitExceededError1"
    assert "retry-after" not in answers[2].headers


class StepClock:
    """Time that passes only when the client waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sent: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def test_the_client_keeps_within_the_hourly_setting_as_well_as_the_minutes() -> None:
    from billbridge.emulation.limits import max_in_window

    clock = StepClock()

    def answer(request: httpx.Request) -> httpx.Response:
        clock.sent.append(clock.now)
        return httpx.Response(200, json=GET_TIMESHEET_SUMMARY_RESPONSE)

    http = RepliconClient("https://na1.replicon.com/acme/", token=TOKEN, per_minute=5,
                          per_hour=12, clock=clock, transport=httpx.MockTransport(answer))
    for _ in range(30):
        http.timesheet_summary("urn:replicon-tenant:acme:timesheet:3")
    assert max_in_window(clock.sent, 60.0) <= 5
    assert max_in_window(clock.sent, 3600.0) <= 12
    assert clock.now > 3600.0  # thirty calls at twelve an hour take more than an hour


# -- the vendor contract (drift) ------------------------------------------------------------
def test_the_documented_summary_and_the_emulators_sheets_are_what_the_contract_knows(
        replicon: RepliconEmulator) -> None:
    from billbridge.connectors.contracts import check
    from billbridge.connectors.replicon.contract import CONTRACT

    assert not check(CONTRACT, "timesheet_summary", GET_TIMESHEET_SUMMARY_RESPONSE["d"])
    tenant = replicon.tenant
    sheet = tenant.expense_sheet("urn:replicon-tenant:acme:user:7", date(2026, 3, 4))
    tenant.expense(sheet, "urn:replicon-tenant:acme:project:12", date(2026, 3, 4),
                   Decimal("12.50"), "USD")
    tenant.set_status(sheet, APPROVED)
    source = RepliconSource(client(replicon.root))
    seen: list[Any] = []
    source.contracts.observer = seen.append
    list(source.poll(None))
    assert source.contracts.reads == 3 and seen == []  # summary, timesheet, expense sheet


def test_a_summary_that_drifted_names_its_drift() -> None:
    from billbridge.connectors.contracts import check
    from billbridge.connectors.replicon.contract import CONTRACT

    drifted = {k: v for k, v in GET_TIMESHEET_SUMMARY_RESPONSE["d"].items()
               if k != "approvalStatus"} | {"approvalState": "approved"}
    described = check(CONTRACT, "timesheet_summary", drifted).describe()
    assert described == "required field approvalStatus missing; new field approvalState (string)"
