"""The QuickBooks names a posting refers to but billbridge does not own: the
employee a worker's time is logged as, and the service item on invoice lines.
Each is found by name, created once when missing, and remembered for the life
of the process, so a batch of time costs no look-up once its workers are
known. The first unknown worker loads every active employee in one query, so
a firm whose consultants are already employees pays one call in all.

A lost acknowledgement of a create needs no marker here: QuickBooks refuses
a second name (6240), and the next look-up finds the first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from billbridge.connectors.base import TransientError
from billbridge.connectors.quickbooks.client import QuickBooksClient, fault_text, quote
from billbridge.connectors.quickbooks.mapping import display_name, ref

NAME_TAKEN = "6240"
ITEM = "item"  # the problems key of the service item


@dataclass(frozen=True, slots=True)
class _Name:
    entity: str  # Employee or Item
    key: str  # the worker id, or ITEM
    name: str

    @property
    def statement(self) -> str:
        field = "DisplayName" if self.entity == "Employee" else "Name"
        return f"select * from {self.entity} where {field} = {quote(self.name)}"


class Directory:
    def __init__(self, client: QuickBooksClient, *, service_item: str = "Services",
                 income_account: str | None = None,
                 employees: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.service_item = service_item
        self.income_account = income_account
        self.configured = dict(employees or {})  # worker id → Employee Id, from the connection
        self.employees = dict(self.configured)  # and those learnt since
        self.item: str | None = None
        self._roster: dict[str, str] | None = None  # active employees: lower-cased name → Id
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Drop what was learnt (a referenced name was deleted or made inactive)."""
        with self._lock:
            self.employees = dict(self.configured)
            self.item = None
            self._roster = None

    def resolve(self, workers: Iterable[str], *, item: bool) -> dict[str, str]:
        """Make the employees of ``workers`` (and, with ``item``, the service
        item) known. Returns the problem of each that could not be found or
        created, keyed by worker id (or ``"item"``)."""
        with self._lock:
            absent = [_Name("Employee", w, display_name(w))
                      for w in sorted(set(workers)) if w not in self.employees]
            if absent and self._roster is None:
                self._roster = {str(r.get("DisplayName", "")).lower(): str(r["Id"]) for r in
                                self.client.query_all("Employee", "Active = true")}
            roster = self._roster or {}
            for name in absent:
                if name.name.lower() in roster:
                    self._remember(name, roster[name.name.lower()])
            absent = [n for n in absent if self._known(n) is None]
            if item and self.item is None:
                wanted = _Name("Item", ITEM, self.service_item)
                self._find([wanted])
                absent += [wanted] if self.item is None else []
            return self._create(absent) if absent else {}

    def _known(self, name: _Name) -> str | None:
        return self.item if name.entity == "Item" else self.employees.get(name.key)

    def _remember(self, name: _Name, record_id: str) -> None:
        if name.entity == "Item":
            self.item = record_id
        else:
            self.employees[name.key] = record_id
            if self._roster is not None:
                self._roster[name.name.lower()] = record_id

    def _find(self, names: list[_Name]) -> None:
        answers = self.client.queries([n.statement for n in names])
        for name, answer in zip(names, answers, strict=True):
            rows = answer.get(name.entity) or []
            if rows:
                self._remember(name, str(rows[0]["Id"]))

    def _body(self, name: _Name) -> dict[str, Any]:
        if name.entity == "Item":
            return {"Name": name.name, "Type": "Service",
                    "IncomeAccountRef": ref(str(self.income_account))}
        return {"DisplayName": name.name, "GivenName": name.name[:25]}

    def _create(self, absent: list[_Name]) -> dict[str, str]:
        problems: dict[str, str] = {}
        creating = []
        for name in absent:
            if name.entity == "Item" and not self.income_account:
                problems[ITEM] = (f"QuickBooks has no service item {name.name!r}, and no "
                                  "income_account is configured to create it")
            else:
                creating.append(name)
        if not creating:
            return problems
        answers = self.client.batch([{"bId": f"n{i}", "operation": "create",
                                      name.entity: self._body(name)}
                                     for i, name in enumerate(creating)])
        taken = []
        for i, name in enumerate(creating):
            answer = answers.get(f"n{i}")
            if answer is None:
                raise TransientError(f"quickbooks: no answer creating {name.entity} "
                                     f"{name.name!r}", code="TARGET_PROTOCOL")
            if isinstance(answer.get(name.entity), dict):
                self._remember(name, str(answer[name.entity]["Id"]))
                continue
            code, message = fault_text(answer.get("Fault") or {})
            if code == NAME_TAKEN:
                taken.append(name)
            else:
                problems[name.key] = f"creating {name.entity} {name.name!r}: {message}"
        if taken:
            self._find(taken)  # created by an earlier attempt, or by someone else
            for name in taken:
                if self._known(name) is None:
                    problems[name.key] = (f"the name {name.name!r} is used by another QuickBooks "
                                          f"customer, vendor or inactive employee, so no active "
                                          f"{name.entity} has it; make it active, or map the "
                                          "worker in the employees option")
        return problems
