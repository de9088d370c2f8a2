"""QuickBooks Online as the ERP ``Target``: each batch of commands becomes one
``POST /batch`` (up to 30 items).

| command | QuickBooks |
|---|---|
| customer.upsert | a Customer (once: after creation QuickBooks owns the customer master) |
| project.upsert | a sub-customer (``Job``) of the customer; later upserts set its name, Active |
| time_charge.post | a TimeActivity of the worker's Employee for the project |
| time_charge.reverse | deleting that TimeActivity |
| invoice.create | an Invoice billed to the project (or to the customer) |

Exactly once, although QuickBooks' ``requestid`` covers only an identical
request: the batch's request id is derived from its commands' keys and
attempts, so a dropped connection is answered by an identical resend at once
(QuickBooks returns its first answer). A resend in a later batch
(``attempt > 1``) first looks for the markers earlier attempts wrote: time
activities by ``TxnDate`` (the only filterable field that narrows them),
invoices by ``CustomerRef``, one batch of queries for the whole send. Customers
and projects need no look-up before: QuickBooks refuses a second record with
the same name (6240), and the one holding it is ours if it carries our marker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import ValidationError

from billbridge.connectors.base import (
    ERP_REFERENCES,
    IdempotencyMode,
    LivePosting,
    OutboundCommand,
    RecordResult,
    ResultStatus,
)
from billbridge.connectors.fields import blank, explain
from billbridge.connectors.quickbooks.client import (
    MAX_RESULTS,
    QuickBooksClient,
    fault_text,
    quote,
)
from billbridge.connectors.quickbooks.directory import ITEM, Directory
from billbridge.connectors.quickbooks.mapping import (
    customer_body,
    invoice_body,
    live_labour,
    project_active,
    project_body,
    project_name,
    read_marker,
    time_activity_body,
)
from billbridge.domain.idempotency import idempotency_key
from billbridge.domain.records import Customer, Invoice, ProjectStatus, TimeCharge

NAME_TAKEN = "6240"
NOT_FOUND = "610"
STALE = "5010"  # the record changed since it was read: read again, write again
INVALID_REFERENCE = "2500"
TRANSIENT_FAULTS = frozenset({"SystemFault", "ServiceFault"})


def _identity(command: OutboundCommand) -> str | None:
    """The QuickBooks record a command writes: one write per record per batch
    (a batch's items cannot see each other's effects)."""
    payload = command.payload
    match command.kind:
        case "customer.upsert":
            return f"customer:{payload.get('id')}"
        case "project.upsert":
            return f"project:{payload.get('code')}"
        case "time_charge.post":
            return f"post:{payload.get('id')}"
        case "time_charge.reverse":
            return f"reverse:{payload.get('charge')}"
        case "invoice.create":
            return f"invoice:{payload.get('id')}"
    return None


@dataclass(slots=True)
class Write:
    command: OutboundCommand
    entity: str
    operation: str  # create, update or delete
    body: dict[str, Any]
    claim: str | None = None  # a name's create: the canonical id its marker must carry
    known: str | None = None  # the QuickBooks id updated or deleted


class QuickBooksTarget:
    references = ERP_REFERENCES  # the payload fields it resolves through refs

    def __init__(self, client: QuickBooksClient, *, name: str = "quickbooks",
                 directory: Directory | None = None,
                 tax_codes: Mapping[str, str] | None = None, concurrency: int = 1) -> None:
        self.name = name
        self.client = client
        self.concurrency = max(1, concurrency)  # dispatch lanes: batch calls in flight at once
        self.max_batch = client.max_batch
        self.rate_limit = client.rate_limit
        self.idempotency = IdempotencyMode.MARKER_LOOKUP
        self.directory = directory or Directory(client)
        self.tax_codes = dict(tax_codes or {})

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        return _Delivery(self, batch).run()

    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        """Time activities live in QuickBooks now: every one, ``MAXRESULTS`` a
        page (a description is not filterable), less those no marker of
        billbridge's names; a reversed or deleted activity is gone."""
        live = live_labour(self.client.query_all("TimeActivity", None))
        wanted = None if charge_ids is None else set(charge_ids)
        return [p for p in live if wanted is None or p.charge in wanted]


class _Delivery:
    """One ``send``: what is settled without a write, what is written, and how
    each answer becomes a ``RecordResult``."""

    def __init__(self, target: QuickBooksTarget, batch: Sequence[OutboundCommand]) -> None:
        self.target = target
        self.client = target.client
        self.batch = list(batch)
        self.results: dict[str, RecordResult] = {}
        self.writes: list[Write] = []
        self.current: dict[tuple[str, str], dict[str, Any]] = {}  # (entity, Id) → record
        self.by_key: dict[str, str] = {}  # marker key → Id
        self.by_canonical: dict[tuple[str, str], str] = {}  # (entity, canonical id) → Id

    def run(self) -> list[RecordResult]:
        commands = self._admit()
        workers = {str(c.payload.get("worker")) for c in commands if c.kind == "time_charge.post"}
        problems = self.target.directory.resolve(
            workers, item=any(c.kind == "invoice.create" for c in commands))
        self._look_up(commands)
        for command in commands:
            self._plan(command, problems)
        if self.writes:
            self._write()
        return [self.results[c.idempotency_key] for c in self.batch]

    def _done(self, command: OutboundCommand, status: ResultStatus, external_id: str | None = None,
              code: str | None = None, message: str | None = None) -> None:
        self.results[command.idempotency_key] = RecordResult(command.idempotency_key, status,
                                                             external_id, code, message)

    def _admit(self) -> list[OutboundCommand]:
        seen: set[str] = set()
        admitted = []
        for command in self.batch:
            identity = _identity(command)
            if identity is None:
                self._done(command, ResultStatus.REJECTED, code="INVALID_COMMAND",
                           message=f"QuickBooks takes no {command.kind!r} commands")
            elif identity in seen:
                self._done(command, ResultStatus.RETRY, message=f"another command for "
                           f"{identity} is in this batch; this one goes in the next")
            else:
                seen.add(identity)
                admitted.append(command)
        return admitted

    # -- reading before writing ------------------------------------------------------
    def _look_up(self, commands: list[OutboundCommand]) -> None:
        """One batch of queries for everything this send must read: records it
        updates or deletes (their SyncToken) and, for resends, the markers of
        earlier attempts."""
        lookups: dict[tuple[str, str], None] = {}
        projects, activities = [], []
        for command in commands:
            payload = command.payload
            if command.kind == "project.upsert":
                existing = command.ref("project", payload.get("code"))
                projects += [existing] if existing else []
            elif command.kind == "time_charge.reverse":
                existing = command.ref("time_charge", payload.get("charge"))
                activities += [existing] if existing else []
            elif command.kind == "time_charge.post" and command.attempt > 1:
                day = _day(payload.get("work_date"))
                if day:
                    lookups[("TimeActivity", f"TxnDate = {quote(day)}")] = None
            elif command.kind == "invoice.create" and command.attempt > 1:
                billed = _billed_to(command)
                if billed:
                    lookups[("Invoice", f"CustomerRef = {quote(billed)}")] = None
        if projects:
            lookups[("Customer", f"Id in ({_ids(projects)}) and Active in (true, false)")] = None
        if activities:
            lookups[("TimeActivity", f"Id in ({_ids(activities)})")] = None
        if not lookups:
            return
        pages = self.client.queries([f"select * from {entity} where {where} "
                                     f"maxresults {MAX_RESULTS}" for entity, where in lookups])
        for (entity, where), page in zip(lookups, pages, strict=True):
            rows = page.get(entity) or []
            if len(rows) >= MAX_RESULTS:  # a full page: read the rest
                rows = self.client.query_all(entity, where)
            for row in rows:
                self._index(entity, row)

    def _index(self, entity: str, row: dict[str, Any]) -> None:
        record_id = str(row.get("Id"))
        self.current[(entity, record_id)] = row
        found = read_marker(row.get("Description") or row.get("PrivateNote") or row.get("Notes"))
        if found is not None:
            self.by_key[found.key] = record_id
            self.by_canonical[(entity, found.canonical_id)] = record_id

    # -- planning ----------------------------------------------------------------------
    def _plan(self, command: OutboundCommand, problems: Mapping[str, str]) -> None:
        try:
            match command.kind:
                case "customer.upsert":
                    self._customer(command)
                case "project.upsert":
                    self._project(command)
                case "time_charge.post":
                    self._time(command, problems)
                case "time_charge.reverse":
                    self._reverse(command)
                case "invoice.create":
                    self._invoice(command, problems)
        except ValidationError as exc:
            self._done(command, ResultStatus.REJECTED, code="INVALID_COMMAND",
                       message=f"{command.kind}: {explain(exc)}")

    def _customer(self, command: OutboundCommand) -> None:
        customer = Customer.model_validate(command.payload)
        existing = command.ref("customer", customer.id)
        if existing:  # QuickBooks owns the customer master once it exists
            self._done(command, ResultStatus.APPLIED, existing)
            return
        self.writes.append(Write(command, "Customer", "create",
                                 customer_body(command.payload, command.idempotency_key),
                                 claim=customer.id))

    def _project(self, command: OutboundCommand) -> None:
        payload = command.payload
        code, status = payload.get("code"), payload.get("status")
        if blank(code) or blank(payload.get("name")) or \
                status not in {s.value for s in ProjectStatus}:
            self._done(command, ResultStatus.REJECTED, code="INVALID_COMMAND",
                       message="project.upsert needs a code, a name and a known status, "
                       f"got {dict(payload)}")
            return
        existing = command.ref("project", code)
        if existing:
            self._update_project(command, existing)
            return
        if blank(payload.get("customer")):
            self._done(command, ResultStatus.REJECTED, code="PROJECT_WITHOUT_CUSTOMER",
                       message=f"project {code} has no customer yet; QuickBooks keeps a "
                       "project as a sub-customer of its customer, so it is created when "
                       "the deal is won")
            return
        parent = command.ref("customer", payload["customer"])
        if parent is None:
            self._done(command, ResultStatus.RETRY, message=f"customer {payload['customer']} "
                       f"of project {code} is not in QuickBooks yet")
            return
        self.writes.append(Write(command, "Customer", "create",
                                 project_body(payload, command.idempotency_key, parent),
                                 claim=str(code)))

    def _update_project(self, command: OutboundCommand, existing: str) -> None:
        record = self.current.get(("Customer", existing))
        if record is None:
            self._done(command, ResultStatus.REJECTED, code=NOT_FOUND,
                       message=f"QuickBooks has no customer {existing} any more for project "
                       f"{command.payload['code']}")
            return
        wanted = {"DisplayName": project_name(command.payload),
                  "Active": project_active(command.payload)}
        if all(record.get(k) == v for k, v in wanted.items()):
            self._done(command, ResultStatus.APPLIED, existing)  # nothing to change
            return
        self.writes.append(Write(command, "Customer", "update",
                                 {"Id": existing, "SyncToken": record.get("SyncToken"),
                                  "sparse": True, **wanted}, known=existing))

    def _time(self, command: OutboundCommand, problems: Mapping[str, str]) -> None:
        charge = TimeCharge.model_validate(command.payload)
        earlier = self.by_key.get(command.idempotency_key)
        if earlier:
            self._done(command, ResultStatus.APPLIED, earlier)
            return
        project = command.ref("project", charge.project)
        if project is None:
            self._done(command, ResultStatus.RETRY,
                       message=f"project {charge.project} is not in QuickBooks yet")
            return
        employee = self.target.directory.employees.get(charge.worker)
        if employee is None:
            self._done(command, ResultStatus.REJECTED, code="UNKNOWN_EMPLOYEE",
                       message=problems.get(charge.worker) or f"no employee for {charge.worker}")
            return
        self.writes.append(Write(command, "TimeActivity", "create", time_activity_body(
            charge, command.idempotency_key, employee=employee, project=project, item=None)))

    def _reverse(self, command: OutboundCommand) -> None:
        charge = command.payload.get("charge")
        existing = command.ref("time_charge", charge)
        if existing is None:
            self._done(command, ResultStatus.RETRY,
                       message=f"the posting of {charge} is not known in QuickBooks yet")
            return
        record = self.current.get(("TimeActivity", existing))
        if record is None:  # deleted already: an earlier attempt's answer was lost
            self._done(command, ResultStatus.APPLIED, existing)
            return
        self.writes.append(Write(command, "TimeActivity", "delete",
                                 {"Id": existing, "SyncToken": record.get("SyncToken")},
                                 known=existing))

    def _invoice(self, command: OutboundCommand, problems: Mapping[str, str]) -> None:
        invoice = Invoice.model_validate(command.payload)
        earlier = self.by_canonical.get(("Invoice", invoice.id))
        if earlier:
            self._done(command, ResultStatus.APPLIED, earlier)
            return
        billed = _billed_to(command)
        item = self.target.directory.item
        if billed is None:
            self._done(command, ResultStatus.RETRY, message=f"{invoice.project or invoice.customer}"
                       f" of invoice {invoice.id} is not in QuickBooks yet")
        elif item is None:
            self._done(command, ResultStatus.REJECTED, code="NO_SERVICE_ITEM",
                       message=problems.get(ITEM) or "no service item")
        else:
            body = invoice_body(invoice, command.idempotency_key, customer=billed, item=item,
                                tax_codes=self.target.tax_codes)
            if isinstance(body, str):
                self._done(command, ResultStatus.REJECTED, code="NO_TAX_CODE", message=body)
            else:
                self.writes.append(Write(command, "Invoice", "create", body))

    # -- writing -----------------------------------------------------------------------
    def _write(self) -> None:
        items = [{"bId": str(i), "operation": w.operation, w.entity: w.body}
                 for i, w in enumerate(self.writes)]
        # Identical only for an identical resend: a later attempt gets a new id,
        # so an answer QuickBooks kept (a fault, say) is never replayed to it.
        request_id = idempotency_key(self.target.name, "quickbooks.batch", "requestid", {
            "writes": [[w.command.idempotency_key, w.command.attempt] for w in self.writes]})
        answers = self.client.batch(items, request_id=request_id)
        names: list[Write] = []
        for i, write in enumerate(self.writes):
            answer = answers.get(str(i))
            if answer is None:
                self._done(write.command, ResultStatus.RETRY, message="QuickBooks sent no "
                           "answer for this item")
            elif isinstance(answer.get(write.entity), dict):
                self._done(write.command, ResultStatus.APPLIED,
                           str(answer[write.entity].get("Id") or write.known))
            else:
                fault: dict[str, Any] = answer["Fault"] if isinstance(answer.get("Fault"),
                                                                      dict) else {}
                if fault_text(fault)[0] == NAME_TAKEN and write.claim:
                    names.append(write)
                else:
                    self._fault(write, fault)
        if names:
            self._claim(names)

    def _fault(self, write: Write, fault: Mapping[str, Any]) -> None:
        code, message = fault_text(fault)
        if code == NOT_FOUND and write.operation == "delete":
            self._done(write.command, ResultStatus.APPLIED, write.known)  # gone already
        elif code == STALE or fault.get("type") in TRANSIENT_FAULTS:
            self._done(write.command, ResultStatus.RETRY, code=code, message=message)
        else:
            if code in (NOT_FOUND, INVALID_REFERENCE):
                self.target.directory.forget()  # a name it remembered may be gone
            self._done(write.command, ResultStatus.REJECTED, code=code, message=message)

    def _claim(self, writes: list[Write]) -> None:
        """A name QuickBooks already has: ours (an earlier attempt made it) if
        the record holding it carries our marker for the same canonical id."""
        pages = self.client.queries([
            f"select * from Customer where DisplayName = {quote(w.body['DisplayName'])} "
            "and Active in (true, false)" for w in writes])
        for write, page in zip(writes, pages, strict=True):
            holder = next(iter(page.get("Customer") or []), None)
            found = read_marker(holder.get("Notes")) if holder else None
            if holder is not None and found is not None and found.canonical_id == write.claim:
                self._done(write.command, ResultStatus.APPLIED, str(holder["Id"]))
            else:
                self._done(write.command, ResultStatus.REJECTED, code="DUPLICATE_NAME",
                           message=f"QuickBooks already has a customer, vendor or employee "
                           f"named {write.body['DisplayName']!r} that billbridge did not "
                           f"create for {write.claim}; rename one of them, then retry")


def _ids(values: list[str]) -> str:
    return ", ".join(quote(v) for v in dict.fromkeys(values))


def _day(value: Any) -> str | None:
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        return None


def _billed_to(command: OutboundCommand) -> str | None:
    """The QuickBooks customer an invoice is billed to: its project's
    sub-customer, or its customer when it covers several projects."""
    payload = command.payload
    if payload.get("project"):
        return command.ref("project", payload["project"])
    return command.ref("customer", payload.get("customer"))
