"""The emulated company's set-up: its entities and the employees a
timesheet may name (the demo's and the tests' consultants)."""

from __future__ import annotations

ENTITIES = {"US01": "United States", "GB01": "United Kingdom"}
EMPLOYEES = {"w-alice": "Alice Ng", "w-bob": "Bob Ruiz", "w-carol": "Carol Diaz"}
