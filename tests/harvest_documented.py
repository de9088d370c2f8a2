"""Harvest API v2's documented example payloads, as published
(help.getharvest.com/api-v2, and the OpenAPI description generated from it):
the contract tests check the emulator answers with these records, fields and
JSON types, and the mapping tests check the mapping reads them."""

from __future__ import annotations

from typing import Any

CLIENTS: list[dict[str, Any]] = [
    {"id": 5735776, "name": "123 Industries", "is_active": True,
     "address": "123 Main St.\r\nAnytown, LA 71223", "statement_key":
     "0a39d3e33c8058cf7c3f8097d854c64e", "created_at": "2017-06-26T21:02:12Z",
     "updated_at": "2017-06-26T21:34:11Z", "currency": "EUR"},
    {"id": 5735774, "name": "ABC Corp", "is_active": True,
     "address": "456 Main St.\r\nAnytown, CT 06467", "statement_key":
     "e42aa2cb60e85925ffe5d13ee7ee8706", "created_at": "2017-06-26T21:01:52Z",
     "updated_at": "2017-06-26T21:27:07Z", "currency": "USD"},
]

PROJECTS: list[dict[str, Any]] = [
    {"id": 14308069, "name": "Online Store - Phase 1", "code": "OS1", "is_active": True,
     "bill_by": "Project", "budget": 200.0, "budget_by": "project", "budget_is_monthly": False,
     "notify_when_over_budget": True, "over_budget_notification_percentage": 80.0,
     "over_budget_notification_date": None, "show_budget_to_all": False,
     "created_at": "2017-06-26T21:52:18Z", "updated_at": "2017-06-26T21:54:06Z",
     "starts_on": "2017-06-01", "ends_on": None, "is_billable": True, "is_fixed_fee": False,
     "notes": "", "client": {"id": 5735776, "name": "123 Industries", "currency": "EUR"},
     "cost_budget": None, "cost_budget_include_expenses": False, "hourly_rate": 100.0,
     "fee": None},
    {"id": 14307913, "name": "Marketing Website", "code": "MW", "is_active": True,
     "bill_by": "Project", "budget": 50.0, "budget_by": "project", "budget_is_monthly": False,
     "notify_when_over_budget": True, "over_budget_notification_percentage": 80.0,
     "over_budget_notification_date": None, "show_budget_to_all": False,
     "created_at": "2017-06-26T21:36:23Z", "updated_at": "2017-06-26T21:54:46Z",
     "starts_on": "2017-01-01", "ends_on": "2017-03-31", "is_billable": True,
     "is_fixed_fee": False, "notes": "",
     "client": {"id": 5735774, "name": "ABC Corp", "currency": "USD"}, "cost_budget": None,
     "cost_budget_include_expenses": False, "hourly_rate": 100.0, "fee": None},
]

TASKS: list[dict[str, Any]] = [
    {"id": 8083800, "name": "Business Development", "billable_by_default": False,
     "default_hourly_rate": 0.0, "is_default": False, "is_active": True,
     "created_at": "2017-06-26T22:08:25Z", "updated_at": "2017-06-26T22:08:25Z"},
    {"id": 8083369, "name": "Research", "billable_by_default": False,
     "default_hourly_rate": 0.0, "is_default": True, "is_active": True,
     "created_at": "2017-06-26T20:41:00Z", "updated_at": "2017-06-26T21:53:34Z"},
    {"id": 8083368, "name": "Project Management", "billable_by_default": True,
     "default_hourly_rate": 100.0, "is_default": True, "is_active": True,
     "created_at": "2017-06-26T20:41:00Z", "updated_at": "2017-06-26T21:14:10Z"},
    {"id": 8083366, "name": "Programming", "billable_by_default": True,
     "default_hourly_rate": 100.0, "is_default": True, "is_active": True,
     "created_at": "2017-06-26T20:41:00Z", "updated_at": "2017-06-26T21:14:07Z"},
    {"id": 8083365, "name": "Graphic Design", "billable_by_default": True,
     "default_hourly_rate": 100.0, "is_default": True, "is_active": True,
     "created_at": "2017-06-26T20:41:00Z", "updated_at": "2017-06-26T21:14:02Z"},
]

ME: dict[str, Any] = {
    "id": 1782884, "first_name": "Bob", "last_name": "Powell",
    "email": "bobpowell@example.com", "telephone": "",
    "timezone": "Mountain Time (US & Canada)", "has_access_to_all_future_projects": False,
    "is_contractor": False, "is_active": True, "created_at": "2020-05-01T20:41:00Z",
    "updated_at": "2020-05-01T20:42:25Z", "weekly_capacity": 126000,
    "default_hourly_rate": 100.0, "cost_rate": 75.0, "roles": ["Founder", "CEO"],
    "access_roles": ["administrator"], "avatar_url":
    "https://cache.harvestapp.com/assets/profile_images/allen_bradley_clock_tower.png?1498509661"}


def _entry(entry_id: int, spent_date: str, client: tuple[int, str], project: tuple[int, str],
           task: tuple[int, str], user_assignment_id: int, task_assignment: dict[str, Any],
           hours: float, rounded: float, notes: str, created_at: str, locked_reason: str,
           is_billed: bool, started: str, ended: str, invoice: dict[str, Any] | None,
           billable: bool, billable_rate: float | None) -> dict[str, Any]:
    return {
        "id": entry_id, "spent_date": spent_date, "user": {"id": 1782959, "name": "Kim Allen"},
        "client": {"id": client[0], "name": client[1]},
        "project": {"id": project[0], "name": project[1]},
        "task": {"id": task[0], "name": task[1]},
        "user_assignment": {"id": user_assignment_id, "is_project_manager": True,
                            "is_active": True, "budget": None,
                            "created_at": "2017-06-26T22:32:52Z",
                            "updated_at": "2017-06-26T22:32:52Z", "hourly_rate": 100.0},
        "task_assignment": task_assignment, "hours": hours, "hours_without_timer": hours,
        "rounded_hours": rounded, "notes": notes, "created_at": created_at,
        "updated_at": "2017-06-27T16:47:14Z", "is_locked": True, "locked_reason": locked_reason,
        "is_closed": True, "is_billed": is_billed, "timer_started_at": None,
        "started_time": started, "ended_time": ended, "is_running": False, "invoice": invoice,
        "external_reference": None, "billable": billable, "budgeted": True,
        "billable_rate": billable_rate, "cost_rate": 50.0}


def _assignment(assignment_id: int, billable: bool, updated_at: str) -> dict[str, Any]:
    created = "2017-06-26T21:36:23Z" if assignment_id == 155502709 else "2017-06-26T21:52:18Z"
    return {"id": assignment_id, "billable": billable, "is_active": True, "created_at": created,
            "updated_at": updated_at, "hourly_rate": 100.0, "budget": None}


APPROVED = "Item Approved and Locked for this Time Period"
INVOICED = "Item Invoiced and Approved and Locked for this Time Period"
ABC, INDUSTRIES = (5735774, "ABC Corp"), (5735776, "123 Industries")
MW, OS1 = (14307913, "Marketing Website"), (14308069, "Online Store - Phase 1")
INVOICE = {"id": 13150403, "number": "1001"}

# GET /v2/time_entries, as documented (note the four entries share one
# updated_at: an approval stamps every entry it approves).
TIME_ENTRIES_PAGE: dict[str, Any] = {
    "time_entries": [
        _entry(636709355, "2017-03-02", ABC, MW, (8083365, "Graphic Design"), 125068553,
               _assignment(155502709, True, "2017-06-26T21:36:23Z"), 2.11, 2.25,
               "Adding CSS styling", "2017-06-27T15:50:15Z", APPROVED, False, "3:00pm",
               "5:00pm", None, True, 100.0),
        _entry(636708723, "2017-03-01", INDUSTRIES, OS1, (8083366, "Programming"), 125068554,
               _assignment(155505014, True, "2017-06-26T21:52:18Z"), 1.35, 1.5,
               "Importing products", "2017-06-27T15:49:28Z", INVOICED, True, "1:00pm",
               "2:00pm", INVOICE, True, 100.0),
        _entry(636708574, "2017-03-01", INDUSTRIES, OS1, (8083369, "Research"), 125068554,
               _assignment(155505016, False, "2017-06-26T21:54:06Z"), 1.0, 1.0,
               "Evaluating 3rd party libraries", "2017-06-27T15:49:17Z", APPROVED, False,
               "11:00am", "12:00pm", None, False, None),
        _entry(636707831, "2017-03-01", INDUSTRIES, OS1, (8083368, "Project Management"),
               125068554, _assignment(155505015, True, "2017-06-26T21:52:18Z"), 2.0, 2.0,
               "Planning meetings", "2017-06-27T15:48:24Z", INVOICED, True, "9:00am",
               "11:00am", INVOICE, True, 100.0),
    ],
    "per_page": 2000, "total_pages": 1, "total_entries": 4, "next_page": None,
    "previous_page": None, "page": 1,
    "links": {"first": "https://api.harvestapp.com/v2/time_entries?page=1&per_page=2000",
              "next": None, "previous": None,
              "last": "https://api.harvestapp.com/v2/time_entries?page=1&per_page=2000"},
}

_KIM_ASSIGNMENT = {"id": 125068553, "is_project_manager": True, "is_active": True,
                   "budget": None, "created_at": "2017-06-26T22:32:52Z",
                   "updated_at": "2017-06-26T22:32:52Z", "hourly_rate": 100.0}

# GET /v2/expenses/15296442 and the second record of GET /v2/expenses.
EXPENSES: list[dict[str, Any]] = [
    {"id": 15296442, "notes": "Lunch with client", "total_cost": 33.35, "units": 1.0,
     "is_closed": False, "is_locked": True, "is_billed": True,
     "locked_reason": "Expense is invoiced.", "spent_date": "2017-03-03",
     "created_at": "2017-06-27T15:09:54Z", "updated_at": "2017-06-27T16:47:14Z",
     "billable": True,
     "receipt": {"url": "https://{ACCOUNT_SUBDOMAIN}.harvestapp.com/expenses/15296442/receipt",
                 "file_name": "lunch_receipt.gif", "file_size": 39410,
                 "content_type": "image/gif"},
     "user": {"id": 1782959, "name": "Kim Allen"}, "user_assignment": _KIM_ASSIGNMENT,
     "project": {"id": 14307913, "name": "Marketing Website", "code": "MW"},
     "expense_category": {"id": 4195926, "name": "Meals", "unit_price": None,
                          "unit_name": None},
     "client": {"id": 5735774, "name": "ABC Corp", "currency": "USD"}, "invoice": INVOICE},
    {"id": 15296423, "notes": "Hotel stay for meeting", "total_cost": 100.0, "units": 1.0,
     "is_closed": True, "is_locked": True, "is_billed": False,
     "locked_reason": "The project is locked for this time period.",
     "spent_date": "2017-03-01", "created_at": "2017-06-27T15:09:17Z",
     "updated_at": "2017-06-27T16:47:14Z", "billable": True, "receipt": None,
     "user": {"id": 1782959, "name": "Kim Allen"},
     "user_assignment": {**_KIM_ASSIGNMENT, "id": 125068554},
     "project": {"id": 14308069, "name": "Online Store - Phase 1", "code": "OS1"},
     "expense_category": {"id": 4197501, "name": "Lodging", "unit_price": None,
                          "unit_name": None},
     "client": {"id": 5735776, "name": "123 Industries", "currency": "EUR"}, "invoice": None},
]

ERROR_BODY_401 = {"error": "invalid_token", "error_description": "The access token provided "
                  "is expired, revoked, malformed or invalid for other reasons."}
