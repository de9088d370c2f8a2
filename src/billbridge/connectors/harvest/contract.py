"""The fields the Harvest source reads, as a contract (connectors.contracts):
time entries and expenses with the fields Harvest API v2 documents (references such
as ``project`` and ``user`` read whole). The API version is ``v2``."""

from __future__ import annotations

from billbridge.connectors.contracts import declare

CONTRACT = declare("harvest", "v2", """
time_entry expense
  string  spent_date! notes locked_reason created_at updated_at!
  number  id!
  boolean billable is_closed is_locked is_billed
  object  user! project! client user_assignment invoice
time_entry
  string  timer_started_at started_time ended_time
  number  hours! hours_without_timer rounded_hours billable_rate cost_rate
  boolean is_running budgeted
  object  task task_assignment external_reference
expense
  number  total_cost! units
  object  expense_category receipt
""")
