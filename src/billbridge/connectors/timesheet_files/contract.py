"""The columns a timesheet file is read with, as a contract
(connectors.contracts): the connection's column map (defaults, its ``columns``
option, the governed ``field_mappings``) names each canonical field's header,
so the map is the contract. A file's header is checked once per file: a column
the map does not name is an unknown field, a required column the file lacks
(the row cannot be read without it) is missing; an optional one may be left
out of a file, as a vendor leaves out an empty field (``omits_empty``). Cells are text, so
there is no type to change; a cell that does not parse is that row's mistake,
an exception with its reason (the file's drift named), not drift. The version
is the column map's fingerprint: a new map is a new contract."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, FieldSpec, FieldType
from billbridge.connectors.timesheet_files.mapping import Columns

SHARED = ("worker", "project", "work_date", "billable", "notes", "status", "id")
FIELDS = {"time_entry": (*SHARED, "task", "hours"),
          "expense": (*SHARED, "amount", "currency", "category")}
REQUIRED = frozenset({"worker", "project", "work_date", "amount"})


def contract(columns: Columns) -> Contract:
    return Contract("csv", f"columns {columns.fingerprint()}", {
        kind: {columns.headers[name]: FieldSpec(FieldType.STRING, name in REQUIRED)
               for name in names if columns.headers.get(name)}
        for kind, names in FIELDS.items()}, omits_empty=True)
