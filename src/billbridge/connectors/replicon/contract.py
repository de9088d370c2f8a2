"""The fields the Replicon source reads, as a contract (connectors.contracts):
a timesheet's summary (``GetTimesheetSummary``, fields as Replicon's
published connector description types them), a timesheet's rows
(``GetStandardTimesheet2``) and an expense sheet (``GetExpenseSheetDetails``),
references and lists read whole. Replicon's services carry their version in
their names (``TimesheetService1``): the API version is ``1``."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, FieldSpec, FieldType, optional, required

S, B, OBJ, ARR = FieldType.STRING, FieldType.BOOLEAN, FieldType.OBJECT, FieldType.ARRAY

SHEET: dict[str, FieldSpec] = {"uri": required(S), "slug": optional(S), "owner": required(OBJ)}

CONTRACT = Contract("replicon", "1", {
    "timesheet_summary": {
        "approvalStatus": required(OBJ), "timesheetStatus": optional(OBJ),
        "actualPayableTimeCalculationStatus": optional(S), "attestationStatusUri": optional(S),
        "scriptCalculationStatus": optional(OBJ), "dueDate": optional(OBJ),
        **{f"actualsBy{by}": optional(ARR) for by in (
            "Activity", "BillingRate", "Date", "Paycode", "Project")},
        **{f"{kind}Duration": optional(OBJ) for kind in (
            "totalTime", "workingTime", "billableTime", "nonBillableTime", "break",
            "overtime", "timeOffTime", "bankedTime")},
    },
    "timesheet": {
        **SHEET, "dateRange": optional(OBJ), "dueDate": optional(OBJ), "rows": required(ARR),
        "customFields": optional(ARR), "noticeExplicitlyAccepted": optional(B),
        "timesheetNotice": optional(OBJ),
    },
    "expense_sheet": {
        **SHEET, "date": optional(OBJ), "description": optional(S),
        "approvalStatus": required(OBJ), "entries": required(ARR),
    },
})
