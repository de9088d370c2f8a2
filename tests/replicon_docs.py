"""Replicon's documented requests and responses: the contract the client's
requests and the emulator's answers are held to. Replicon publishes no
OpenAPI of its own; the machine-readable description it publishes is its
Microsoft Power Platform connector (``microsoft/PowerPlatformConnectors``,
``certified-connectors/Replicon/apiDefinition.swagger.json``, publisher
Replicon Inc.), which gives schemas, not example values. Each example below
is that schema's field names and JSON types with values of our choosing,
under the operation id it comes from. The description types ``page`` and
``pagesize`` as strings; the error envelope is not in it and comes from
Replicon's "Understanding error responses" as more-vendors.md section 4
quotes it.
"""

from __future__ import annotations

from typing import Any

# definitions/Duration and definitions/Date
DURATION: dict[str, Any] = {"hours": 8, "minutes": 30, "seconds": 0, "milliseconds": 0,
                            "microseconds": 0}
DATE: dict[str, Any] = {"year": 2026, "month": 3, "day": 2}
# definitions/ProjectReference
PROJECT_REFERENCE: dict[str, Any] = {
    "code": "GLX-001", "displayText": "Globex ERP rollout", "name": "Globex ERP rollout",
    "slug": "globex-erp-rollout", "uri": "urn:replicon-tenant:acme:project:12"}

# operationId GetTimesheetSummary: POST /services/TimesheetService1.svc/GetTimesheetSummary
GET_TIMESHEET_SUMMARY_REQUEST: dict[str, Any] = {
    "timesheetUri": "urn:replicon-tenant:acme:timesheet:3"}
GET_TIMESHEET_SUMMARY_RESPONSE: dict[str, Any] = {"d": {
    "actualPayableTimeCalculationStatus": "urn:replicon:calculation-status:complete",
    "actualsByActivity": [], "actualsByBillingRate": [],
    "actualsByDate": [{"breakDuration": DURATION, "date": DATE, "hasComments": False,
                       "isHolidayDayOff": False, "isWeeklyDayOff": False,
                       "timeOffDuration": DURATION, "totalTimeDuration": DURATION,
                       "workingTimeDuration": DURATION}],
    "actualsByPaycode": [],
    "actualsByProject": [{"project": PROJECT_REFERENCE, "totalTimeDuration": DURATION}],
    "approvalStatus": {"displayText": "Approved",
                       "uri": "urn:replicon:approval-status:approved"},
    "attestationStatusUri": "urn:replicon:attestation-status:attested",
    "bankedTimeDuration": DURATION, "billableTimeDuration": DURATION,
    "breakDuration": DURATION, "dueDate": DATE, "nonBillableTimeDuration": DURATION,
    "overtimeDuration": DURATION, "scriptCalculationStatus": {},
    "timeOffTimeDuration": DURATION,
    "timesheetStatus": {"displayText": "Approved",
                        "uri": "urn:replicon:approval-status:approved"},
    "totalTimeDuration": DURATION, "workingTimeDuration": DURATION}}

# operationId UserListServiceGetData: POST /services/UserListService1.svc/GetData; every
# *ListService1.svc/GetData shares this request and answer (the task list's is the same).
LIST_GET_DATA_REQUEST: dict[str, Any] = {
    "page": "1", "pagesize": "100",
    "columnUris": ["urn:replicon:user-list-column:user"],
    "sort": [], "filterExpression": {}}
LIST_GET_DATA_RESPONSE: dict[str, Any] = {"d": {
    "header": [{"displayName": "User", "uri": "urn:replicon:user-list-column:user"}],
    "rows": [{"cells": [{"dataType": "urn:replicon:list-type:object",
                         "objectType": "urn:replicon:object-type:user", "slug": "alice",
                         "textValue": "Ng, Alice",
                         "uri": "urn:replicon-tenant:acme:user:7"}]}]}}

# operationId BulkGetProjectDetails3: POST /services/ProjectService1.svc/BulkGetProjectDetails3
BULK_GET_PROJECT_DETAILS3_REQUEST: dict[str, Any] = {"projects": [
    {"uri": "urn:replicon-tenant:acme:project:12", "name": "Globex ERP rollout",
     "code": "GLX-001", "parameterCorrelationId": "GLX-001"}]}
BULK_GET_PROJECT_DETAILS3_RESPONSE: dict[str, Any] = {"d": [
    {"error": {"type": "InvalidProjectReferenceError1", "displayText": "No such project."},
     "parameterCorrelationId": "NOPE-1", "projectDetails": {}},
    {"error": {}, "parameterCorrelationId": "GLX-001", "projectDetails": {
        "code": "GLX-001", "description": "", "displayText": "Globex ERP rollout",
        "name": "Globex ERP rollout", "slug": "globex-erp-rollout",
        "uri": "urn:replicon-tenant:acme:project:12", "clients": [], "customFields": []}}]}
PROJECT_DETAILS_FIELDS = ("code", "description", "displayText", "name", "slug", "uri")

# operationId CreateProjectOrApplyModifications:
# POST /services/ProjectService1.svc/CreateProjectOrApplyModifications
CREATE_PROJECT_OR_APPLY_MODIFICATIONS_REQUEST: dict[str, Any] = {
    "target": {"uri": "urn:replicon-tenant:acme:project:12"},
    "modifications": {"nameToApply": {"value": "Globex ERP rollout"},
                      "codeToApply": {"value": "GLX-001"},
                      "descriptionToApply": {"value": "ERP project: L-000002"}},
    "projectModificationOptionUri": "urn:replicon:project-modification-option:apply",
    "unitOfWorkId": "3f1c0d0e-0000-4000-8000-000000000001"}
CREATE_PROJECT_OR_APPLY_MODIFICATIONS_RESPONSE: dict[str, Any] = {"d": PROJECT_REFERENCE}

# Replicon's error envelope ([RERR] in more-vendors.md section 4).
ERROR: dict[str, Any] = {"error": {
    "correlationId": "0c5b2c4e-93f1-4c52-9d5a-0f3f1c2d7a10",
    "details": {"displayText": "timesheetUri is required."},
    "type": "MissingRequiredParameterError1"}}
