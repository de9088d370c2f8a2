"""The fields the Replicon source reads, as a contract (connectors.contracts):
a timesheet's summary (``GetTimesheetSummary``, fields as Replicon's
published connector description types them), a timesheet's rows
(``GetStandardTimesheet2``) and an expense sheet (``GetExpenseSheetDetails``),
references and lists read whole. Replicon's services carry their version in
their names (``TimesheetService1``): the API version is ``1``."""

from __future__ import annotations

from billbridge.connectors.contracts import declare

CONTRACT = declare("replicon", "1", """
timesheet_summary
  string  actualPayableTimeCalculationStatus attestationStatusUri
  object  approvalStatus! timesheetStatus scriptCalculationStatus dueDate
  object  totalTimeDuration workingTimeDuration billableTimeDuration
  object  nonBillableTimeDuration breakDuration overtimeDuration timeOffTimeDuration
  object  bankedTimeDuration
  array   actualsByActivity actualsByBillingRate actualsByDate actualsByPaycode
  array   actualsByProject
timesheet expense_sheet
  string  uri! slug
  object  owner!
timesheet
  boolean noticeExplicitlyAccepted
  object  dateRange dueDate timesheetNotice
  array   rows! customFields
expense_sheet
  string  description
  object  date approvalStatus!
  array   entries!
""")
