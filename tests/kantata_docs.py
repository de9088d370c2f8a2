"""Kantata's documented example payloads, as its API reference and the
official ``mavenlink_gem`` specification give them: the contract the
emulator's answers and the mapping are held to. Kantata has no official
Python client; these examples are what its wire format is known by.

Sources (read through the search tool; see docs/connectors/kantata.md):
- developer.mavenlink.com/ (v1 "Response Format") and developer.kantata.com
  section "Errors": RESPONSE_FORMAT, ERRORS.
- developer.kantata.com response samples (OpenAPI): META, the field names and
  JSON types of TIMESHEET_SUBMISSION and SUBSCRIBED_EVENT.
- developer.mavenlink.com/time_entries and the gem's
  lib/config/specification.yml (time_entries, workspaces, stories, expenses,
  custom_field_values attributes), with JSON types from the reference's
  samples (ids and foreign keys are strings, cents and minutes integers).
- developer.kantata.com "Creating a new Custom Field Value" (bulk example):
  CUSTOM_FIELD_VALUES_BULK.
"""

from __future__ import annotations

from typing import Any

RESPONSE_FORMAT: dict[str, Any] = {
    "count": 2,
    "results": [{"key": "workspaces", "id": "10"}, {"key": "workspaces", "id": "11"}],
    "workspaces": {
        "10": {"id": "10", "title": "some project", "participant_ids": ["2", "6"],
               "primary_counterpart_id": "6"},
        "11": {"id": "11", "title": "another project", "participant_ids": ["2", "8"],
               "primary_counterpart_id": "8"},
    },
    "users": {"2": {"id": "2", "full_name": "bob"}, "6": {"id": "6", "full_name": "chaz"},
              "8": {"id": "8", "full_name": "jane"}},
}

META: dict[str, Any] = {"count": 0, "page_count": 0, "page_number": 0, "page_size": 0}

ERRORS: dict[str, dict[str, Any]] = {
    "oauth": {"errors": [{"type": "oauth", "message": "Invalid OAuth 2 Request"}]},
    "system": {"errors": [{"type": "system", "message": "Your account has been canceled"}]},
    "validation": {"errors": [
        {"type": "validation", "message": "Please give your project a title", "field": "title"},
        {"type": "validation", "message": "Please select a role for this project",
         "field": "creator_role"}]},
}

TIME_ENTRY: dict[str, Any] = {
    "id": "4211", "created_at": "2026-03-02T17:05:09Z", "updated_at": "2026-03-02T17:05:09Z",
    "date_performed": "2026-03-02", "story_id": "900", "time_in_minutes": 95,
    "billable": True, "notes": "Data migration dry run", "rate_in_cents": 17500,
    "cost_rate_in_cents": 8000, "currency": "USD", "currency_symbol": "$",
    "currency_base_unit": 100, "user_can_edit": True, "workspace_id": "77", "user_id": "7",
    "approved": True, "role_id": None, "taxable": False, "is_invoiced": False,
    "active_submission_id": "3001", "location": None,
}

WORKSPACE: dict[str, Any] = {
    "id": "77", "title": "Globex ERP rollout", "archived": False, "description": "",
    "due_date": "2026-12-31", "start_date": "2026-03-01", "budgeted": True,
    "change_orders_enabled": False, "updated_at": "2026-03-01T09:00:00Z",
    "created_at": "2026-02-20T12:00:00Z", "consultant_role_name": "Consultant",
    "client_role_name": "Client", "can_create_line_items": True, "currency": "USD",
    "currency_symbol": "$", "currency_base_unit": 100, "price_in_cents": 5000000,
    "require_time_approvals": True, "require_expense_approvals": True,
    "percentage_complete": 0, "access_level": "open",
    "status": {"color": "green", "key": 310, "message": "In Progress"},
}

STORY: dict[str, Any] = {
    "id": "901", "workspace_id": "77", "parent_id": None, "billable": True,
    "title": "Go-live sign-off", "description": "", "story_type": "milestone",
    "state": "completed", "position": 3, "archived": False,
    "deleted_at": None, "updated_at": "2026-03-20T10:00:00Z",
    "created_at": "2026-03-01T09:00:00Z", "due_date": "2026-03-31", "start_date": None,
    "budget_estimate_in_cents": 1250000, "fixed_fee": True, "percentage_complete": 100,
}

EXPENSE: dict[str, Any] = {
    "id": "5120", "created_at": "2026-03-04T08:00:00Z", "updated_at": "2026-03-04T08:00:00Z",
    "date": "2026-03-03", "notes": "Client site visit", "category": "Travel",
    "amount_in_cents": 23450, "currency": "USD", "currency_symbol": "$",
    "currency_base_unit": 100, "user_can_edit": True, "is_invoiced": False,
    "is_billable": True, "taxable": False, "reimbursable": True, "workspace_id": "77",
    "user_id": "7", "story_id": None, "receipt_id": None, "expense_category_id": None,
}

TIMESHEET_SUBMISSION: dict[str, Any] = {
    "id": "3001", "comment": "", "created_at": "2026-03-06T16:00:00Z", "currency": "USD",
    "currency_base_unit": 100, "currency_symbol": "$",
    "current_resolution_created_at_date": "2026-03-07T09:00:00Z",
    "current_resolution_creator_id": 12, "current_resolution_description": "",
    "end_date": "2026-03-08", "external_reference_ids": [],
    "line_item_total_formatted": "$277.08", "line_item_total_in_cents": 27708,
    "permissions": {"can_cancel_submission": True, "can_approve_submission": True,
                    "can_reject_submission": True, "can_resubmit_submission": False},
    "resolution_description": "", "start_date": "2026-03-02", "status": "approved",
    "time_entry_ids": ["4211"], "title": "Week of March 2", "type": "timesheet_submission",
    "updated_at": "2026-03-07T09:00:00Z", "user_id": "7", "workspace_id": "77",
}

CUSTOM_FIELD_VALUE: dict[str, Any] = {
    "id": "1001", "subject_type": "Workspace", "subject_id": 77, "value": "GLX-001",
    "display_value": "GLX-001", "can_edit": True, "type": "string", "setter_id": "1",
    "account_id": 1, "custom_field_id": "501", "custom_field_name": "Project Code",
    "created_at": "2026-02-20T12:00:00Z", "updated_at": "2026-02-20T12:00:00Z",
}

CUSTOM_FIELD_VALUES_BULK: dict[str, Any] = {
    "custom_field_values": [
        {"subject_type": "Workspace", "subject_id": 123, "custom_field_id": 456,
         "value": "Hello world"},
        {"subject_type": "Workspace", "subject_id": 123, "custom_field_id": 789,
         "value": "Hello world"},
    ]
}

SUBSCRIBED_EVENT: dict[str, Any] = {
    "id": "88", "account_id": 1, "created_at": "2026-03-07T09:01:00Z",
    "current_payload": None, "event_type": "time_entry:deleted",
    "payload_changes": "[]",
    "previous_payload": '{"id": "4211", "workspace_id": "77", "time_in_minutes": 95}',
    "subject_changed_at": "2026-03-07T09:00:30Z", "subject_id": 4211,
    "subject_ref": {"key": "time_entries", "id": "4211"}, "subject_type": "TimeEntry",
    "user_id": 12,
}
