"""The fields the Harvest source reads, as a contract (connectors.contracts):
time entries and expenses with the fields Harvest API v2 documents (references such
as ``project`` and ``user`` read whole). The API version is ``v2``."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, FieldSpec, FieldType, optional, required

S, N, B, OBJ = FieldType.STRING, FieldType.NUMBER, FieldType.BOOLEAN, FieldType.OBJECT

SHARED: dict[str, FieldSpec] = {
    "id": required(N), "spent_date": required(S), "user": required(OBJ),
    "project": required(OBJ), "client": optional(OBJ), "user_assignment": optional(OBJ),
    "invoice": optional(OBJ), "notes": optional(S), "billable": optional(B),
    "is_closed": optional(B), "is_locked": optional(B), "is_billed": optional(B),
    "locked_reason": optional(S), "created_at": optional(S), "updated_at": required(S),
}

CONTRACT = Contract("harvest", "v2", {
    "time_entry": {
        **SHARED, "task": optional(OBJ), "task_assignment": optional(OBJ),
        "hours": required(N), "hours_without_timer": optional(N), "rounded_hours": optional(N),
        "timer_started_at": optional(S), "started_time": optional(S), "ended_time": optional(S),
        "is_running": optional(B), "external_reference": optional(OBJ), "budgeted": optional(B),
        "billable_rate": optional(N), "cost_rate": optional(N),
    },
    "expense": {
        **SHARED, "expense_category": optional(OBJ), "receipt": optional(OBJ),
        "total_cost": required(N), "units": optional(N),
    },
})
