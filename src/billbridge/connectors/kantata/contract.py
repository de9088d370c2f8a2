"""The fields the Kantata connector reads, as a contract (connectors.contracts):
each resource's record as Kantata's normalised answer holds it (the fields its
API reference and the ``mavenlink_gem`` specification document, ids and
foreign keys strings, cents and minutes integers; tests/kantata_docs.py),
required where the mapping cannot do without one. The poller and the webhook
door read records through the same code, so both are checked. Kantata's API
has one version, ``v1`` (the path ``/api/v1``)."""

from __future__ import annotations

from billbridge.connectors.contracts import declare

CONTRACT = declare("kantata", "v1", """
workspace story time_entry expense timesheet_submission expense_report_submission
  string  id! created_at updated_at!
workspace time_entry expense timesheet_submission expense_report_submission
  string  currency currency_symbol
  number  currency_base_unit
workspace story
  string  title description due_date start_date
  boolean archived
  number  percentage_complete
  array   custom_field_value_ids
time_entry expense timesheet_submission expense_report_submission
  string  workspace_id! user_id!
time_entry expense
  string  notes story_id
  boolean taxable is_invoiced user_can_edit
workspace
  string  access_level
  boolean budgeted require_time_approvals require_expense_approvals
  number  price_in_cents
  object  status
story
  string  workspace_id! story_type state deleted_at parent_id
  boolean billable fixed_fee
  number  position budget_estimate_in_cents
time_entry
  string  date_performed! active_submission_id role_id location
  number  time_in_minutes! rate_in_cents cost_rate_in_cents
  boolean billable approved
expense
  string  date! category recent_submission_id receipt_id expense_category_id
  number  amount_in_cents!
  boolean is_billable reimbursable
timesheet_submission expense_report_submission
  string  status! title comment type start_date end_date line_item_total_formatted
  string  resolution_description current_resolution_description
  string  current_resolution_created_at_date
  number  line_item_total_in_cents current_resolution_creator_id
  object  permissions
  array   external_reference_ids
timesheet_submission
  array   time_entry_ids!
expense_report_submission
  array   expense_ids!
""")
