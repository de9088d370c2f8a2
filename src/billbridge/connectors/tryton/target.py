"""Tryton as the ERP ``Target``: parties, projects with their tasks,
timesheet lines for time charges (deleted again on reversal) and posted
customer invoices, each kind written with one ``create`` call per batch.

Exactly once without an idempotency key: every record carries a marker
(``mapping``'s table). Customers, projects and invoices are few, and may be
written by several commands (a deal won twice, a project updated), so their
marker is always looked up before creating; time charges are many and each
is written by one command only, so their markers are looked up only when
``command.attempt > 1`` (a resend, which may follow a lost acknowledgement):
a first send costs no extra call.

``send`` never raises once something in the batch was applied, except for
faults after which the dispatcher resends every command as a new attempt
(transient faults, refused credentials), which the look-ups make safe. A call
Tryton refuses applied nothing (Tryton rolls the whole call back), so a
refused group is split here until the refused record is isolated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from billbridge.connectors.base import (
    ERP_REFERENCES,
    IdempotencyMode,
    LivePosting,
    OutboundCommand,
    PermanentError,
    RateLimit,
    RecordResult,
    ResultStatus,
    TransientError,
)
from billbridge.connectors.tryton.client import TrytonClient, TrytonError
from billbridge.connectors.tryton.mapping import (
    CHARGE_PATTERN,
    InvoiceTargets,
    MappingError,
    Settings,
    charge_marker,
    charge_prefix,
    invoice_values,
    like_prefix,
    live_line,
    party_values,
    project_values,
    task_values,
    timesheet_values,
    totals_differ,
    work_code,
    work_name,
)

Results = dict[str, RecordResult]
Handler = Callable[[Sequence[OutboundCommand]], Results]

# Kinds in the order a batch applies them: what others name comes first, and
# a charge's reversal before a new posting of the same charge.
KINDS = ("customer.upsert", "project.upsert", "time_charge.reverse", "time_charge.post",
         "invoice.create")
MAX_BATCH = 100
READ_PAGE = 100  # timesheet lines a search_read, reading what Tryton holds


def _subject(command: OutboundCommand) -> str:
    """The Tryton record a command writes: two commands on one record never
    share a wave, so their outbox order holds."""
    payload = command.payload
    kind = command.kind.split(".")[0]
    return f"{kind}:{payload.get('charge') or payload.get('id') or payload.get('code')}"


def applied(command: OutboundCommand, external_id: int | str | None) -> RecordResult:
    return RecordResult(command.idempotency_key, ResultStatus.APPLIED,
                        external_id=None if external_id is None else str(external_id))


def rejected(command: OutboundCommand, code: str, message: str) -> RecordResult:
    return RecordResult(command.idempotency_key, ResultStatus.REJECTED, code=code,
                        message=message)


def retry(command: OutboundCommand, message: str,
          retry_after: float | None = None) -> RecordResult:
    return RecordResult(command.idempotency_key, ResultStatus.RETRY, message=message,
                        retry_after=retry_after)


class TrytonTarget:
    references = ERP_REFERENCES  # the payload fields it resolves through refs

    def __init__(self, client: TrytonClient, settings: Settings, *, name: str = "tryton",
                 max_batch: int = MAX_BATCH, rate_limit: RateLimit | None = None,
                 read_page: int = READ_PAGE) -> None:
        self.name = name
        self.client = client
        self.settings = settings
        self.max_batch = max_batch
        self.read_page = max(1, read_page)
        self.rate_limit = rate_limit or RateLimit(20, 1, burst=20)
        self.idempotency = IdempotencyMode.MARKER_LOOKUP
        # Tryton ids that never change once read, kept for the process's life.
        # project work → {task id, or "" for the project's own: timesheet work}
        self._works: dict[int, dict[str, int]] = {}
        self._statuses: dict[str, int] | None = None
        self._currencies: dict[str, int] = {}
        # (receivable account, labour's unit, revenue journal): the firm's defaults
        self._invoice_defaults: tuple[int, int, int] | None = None
        self._handlers: dict[str, Handler] = {
            "customer.upsert": self._customers, "project.upsert": self._projects,
            "time_charge.reverse": self._reversals, "time_charge.post": self._charges,
            "invoice.create": self._invoices}

    def close(self) -> None:
        self.client.close()

    # -- the batch ---------------------------------------------------------------
    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: Results = {}
        pending = list(batch)
        for command in batch:
            if command.kind not in self._handlers:
                results[command.idempotency_key] = rejected(
                    command, "UNSUPPORTED_KIND", f"Tryton takes {', '.join(KINDS)}, "
                    f"not {command.kind}")
                pending.remove(command)
        for wave in _waves(pending):
            for kind in KINDS:
                group = [c for c in wave if c.kind == kind]
                if not group:
                    continue
                try:
                    results |= self._isolate(group, self._handlers[kind])
                except TransientError as exc:
                    if not results:
                        raise  # nothing applied: the dispatcher retries the whole batch
                    rest = [c for c in batch if c.idempotency_key not in results]
                    results |= {c.idempotency_key: retry(c, str(exc), exc.retry_after)
                                for c in rest}
                    return list(results.values())
        return list(results.values())

    def _isolate(self, group: Sequence[OutboundCommand], handler: Handler) -> Results:
        """Apply a group; when Tryton refuses the call, halve it until the
        refused record stands alone (a refused call applied nothing). Refused
        credentials are the connection's fault, not a record's: they go up."""
        try:
            return handler(group)
        except PermanentError as exc:
            if exc.code == "TARGET_AUTH":
                raise
            if len(group) == 1:
                reason = exc.reason if isinstance(exc, TrytonError) else str(exc)
                return {group[0].idempotency_key: rejected(group[0], exc.code, reason)}
            middle = len(group) // 2
            return self._isolate(group[:middle], handler) | self._isolate(group[middle:],
                                                                          handler)

    # -- what Tryton holds live ---------------------------------------------------------
    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        """Timesheet lines live in Tryton now: those whose description is a
        charge marker, ``read_page`` at a time in id order. A line has no
        state: a reversal deletes it, and a deleted line is gone."""
        wanted = None if charge_ids is None else set(charge_ids)
        out: list[LivePosting] = []
        after = 0  # keyset paging: a line deleted meanwhile cannot shift the next page
        while True:
            rows = self.client.search_read(
                "timesheet.line", [("description", "like", CHARGE_PATTERN), ("id", ">", after)],
                ["description", "duration"], limit=self.read_page, order=[("id", "ASC")])
            out += [p for p in map(live_line, rows)
                    if p is not None and (wanted is None or p.charge in wanted)]
            if len(rows) < self.read_page:
                return out
            after = max(int(r["id"]) for r in rows)

    # -- customers -----------------------------------------------------------------
    def _customers(self, commands: Sequence[OutboundCommand]) -> Results:
        results: Results = {}
        todo: list[OutboundCommand] = []
        for command in commands:
            ref = command.ref("customer", command.payload.get("id"))
            if ref is not None:
                # After creation the ERP owns the customer master: nothing to write.
                results[command.idempotency_key] = applied(command, ref)
            else:
                todo.append(command)
        if not todo:
            return results
        codes = [str(c.payload.get("id")) for c in todo]
        found = {row["code"]: row["id"] for row in self.client.search_read(
            "party.party", [("code", "in", codes)], ["code"])}
        create: list[tuple[OutboundCommand, dict[str, Any]]] = []
        for command in todo:
            code = str(command.payload.get("id"))
            if code in found:
                results[command.idempotency_key] = applied(command, found[code])
                continue
            try:
                create.append((command, party_values(command.payload)))
            except MappingError as exc:
                results[command.idempotency_key] = rejected(command, "INVALID_PAYLOAD", str(exc))
        return results | self._create("party.party", create)

    def _create(self, model: str,
                items: Sequence[tuple[OutboundCommand, Mapping[str, Any]]]) -> Results:
        if not items:
            return {}
        ids = self.client.create(model, [values for _command, values in items])
        return {command.idempotency_key: applied(command, record_id)
                for (command, _values), record_id in zip(items, ids, strict=True)}

    # -- projects --------------------------------------------------------------------
    def _status(self, status: str | None) -> int | None:
        if self._statuses is None:
            rows = self.client.search_read("project.work.status", [], ["name"])
            self._statuses = {row["name"]: row["id"] for row in rows}
        name = self.settings.statuses.get(str(status))
        return self._statuses.get(name) if name else None

    def _find_projects(self, codes: Sequence[str]) -> dict[str, int]:
        if not codes:
            return {}
        domain: list[Any] = [("type", "=", "project"), ("parent", "=", None),
                             ["OR", *[("name", "like", like_prefix(work_name(code, "")))
                                      for code in codes]]]
        rows = self.client.search_read("project.work", domain, ["name"], order=[("id", "ASC")])
        found: dict[str, int] = {}
        for row in rows:
            found.setdefault(work_code(row["name"]), row["id"])
        return found

    def _projects(self, commands: Sequence[OutboundCommand]) -> Results:
        results: Results = {}
        company = int(self.client.context()["company"])
        refs = {c.idempotency_key: c.ref("project", c.payload.get("code")) for c in commands}
        found = self._find_projects([str(c.payload.get("code")) for c in commands
                                     if refs[c.idempotency_key] is None])
        create: list[tuple[OutboundCommand, dict[str, Any]]] = []
        updates: list[tuple[OutboundCommand, int, dict[str, Any]]] = []
        for command in commands:
            payload = command.payload
            customer = payload.get("customer")
            party = command.ref("customer", customer) if customer else None
            if customer and party is None:
                results[command.idempotency_key] = retry(
                    command, f"customer {customer} is not at Tryton yet")
                continue
            try:
                values = project_values(payload, party=int(party) if party else None,
                                        status=self._status(payload.get("status")),
                                        company=company)
            except MappingError as exc:
                results[command.idempotency_key] = rejected(command, "INVALID_PAYLOAD", str(exc))
                continue
            existing = refs[command.idempotency_key] or found.get(str(payload["code"]))
            if existing is None:
                create.append((command, values))
            else:
                updates.append((command, int(existing), values))
        if updates:
            results |= self._update_projects(updates, company)
        results |= self._create("project.work", create)
        # Time charges name the project; their lines go on its tasks' timesheet
        # works: learn those now, in one call, rather than per batch of time.
        written = [int(r.external_id) for r in results.values()
                   if r.status is ResultStatus.APPLIED and r.external_id]
        if written:
            self._works |= self._read_tasks(written)
        return results

    def _update_projects(self, updates: Sequence[tuple[OutboundCommand, int, dict[str, Any]]],
                         company: int) -> Results:
        """The PSA owns name, status and tasks: write them; add missing tasks."""
        pairs: list[Any] = []
        for _command, work, values in updates:
            pairs += [[work], {k: v for k, v in values.items()
                               if k in ("name", "status", "party")}]
        self.client.write("project.work", *pairs)
        tasks = self._read_tasks([work for _command, work, _values in updates])
        new_tasks = []
        for command, work, _values in updates:
            for task in command.payload.get("tasks") or ():
                if str(task["id"]) not in tasks.get(work, {}):
                    new_tasks.append(task_values(task, company) | {"parent": work})
        if new_tasks:
            self.client.create("project.work", new_tasks)
        return {command.idempotency_key: applied(command, work)
                for command, work, _values in updates}

    def _read_tasks(self, projects: Sequence[int]) -> dict[int, dict[str, int]]:
        """Each project's timesheet works: ``""`` the project's own, else by task id."""
        rows = self.client.search_read(
            "project.work", ["OR", ("id", "in", list(projects)), ("parent", "in", list(projects))],
            ["name", "parent", "timesheet_works"])
        works: dict[int, dict[str, int]] = {p: {} for p in projects}
        for row in rows:
            timesheet = row["timesheet_works"][0] if row["timesheet_works"] else None
            if row["id"] in works and timesheet is not None:
                works[row["id"]][""] = timesheet
            elif row["parent"] in works and timesheet is not None:
                works[row["parent"]].setdefault(work_code(row["name"]), timesheet)
        return works

    # -- time --------------------------------------------------------------------------
    def _charges(self, commands: Sequence[OutboundCommand]) -> Results:
        results: Results = {}
        company = int(self.client.context()["company"])
        projects = {c.idempotency_key: c.ref("project", c.payload.get("project"))
                    for c in commands}
        unknown = {int(p) for p in projects.values() if p is not None} - set(self._works)
        if unknown:
            self._works |= self._read_tasks(sorted(unknown))
        resent = [c for c in commands if c.attempt > 1]
        found: dict[str, int] = {}
        if resent:
            markers = [charge_marker(c.payload, c.idempotency_key) for c in resent]
            found = {row["description"]: row["id"] for row in self.client.search_read(
                "timesheet.line", [("description", "in", markers)], ["description"])}
        create: list[tuple[OutboundCommand, dict[str, Any]]] = []
        for command in commands:
            payload = command.payload
            marker = charge_marker(payload, command.idempotency_key)
            if marker in found:
                results[command.idempotency_key] = applied(command, found[marker])
                continue
            project = projects[command.idempotency_key]
            works = self._works.get(int(project)) if project is not None else None
            work = (works or {}).get(str(payload.get("task") or "")) or (works or {}).get("")
            employee = self.settings.employee(str(payload.get("worker")))
            if project is None:
                results[command.idempotency_key] = retry(
                    command, f"project {payload.get('project')} is not at Tryton yet")
            elif work is None:
                results[command.idempotency_key] = rejected(
                    command, "NO_TIMESHEET_WORK", f"Tryton project work {project} "
                    f"({payload.get('project')}) is not available on timesheets: tick "
                    "'Available on timesheets' on it in Tryton, then retry")
            elif employee is None:
                results[command.idempotency_key] = rejected(
                    command, "NO_EMPLOYEE", f"worker {payload.get('worker')} has no Tryton "
                    "employee: add it to the connection's employees option or set "
                    "default_employee")
            else:
                try:
                    create.append((command, timesheet_values(
                        payload, command.idempotency_key, work=work, employee=employee,
                        company=company)))
                except MappingError as exc:
                    results[command.idempotency_key] = rejected(command, "INVALID_PAYLOAD",
                                                                str(exc))
        return results | self._create("timesheet.line", create)

    def _reversals(self, commands: Sequence[OutboundCommand]) -> Results:
        """A reversal deletes the charge's timesheet line (Tryton's durations
        cannot be negative). Finding none means it is already undone."""
        prefixes = {c.idempotency_key: charge_prefix(str(c.payload.get("charge")))
                    for c in commands}
        rows = self.client.search_read(
            "timesheet.line", ["OR", *[("description", "like", like_prefix(p))
                                       for p in prefixes.values()]], ["description"])
        lines: dict[str, list[int]] = {key: [r["id"] for r in rows
                                             if str(r["description"]).startswith(prefix)]
                                       for key, prefix in prefixes.items()}
        doomed = sorted({line for ids in lines.values() for line in ids})
        if doomed:
            self.client.delete("timesheet.line", doomed)
        return {c.idempotency_key: applied(c, ",".join(map(str, lines[c.idempotency_key]))
                                           or None) for c in commands}

    # -- invoices ------------------------------------------------------------------------
    def _invoice_targets(self, commands: Sequence[OutboundCommand]
                         ) -> dict[str, InvoiceTargets | str]:
        """Tryton ids each new invoice needs, or why it cannot have them."""
        if self._invoice_defaults is None:
            config = self.client.read("account.configuration", [1],
                                      ["default_account_receivable"])[0]
            product = self.client.read("product.product", [self.settings.labour_product],
                                       ["default_uom"])[0]
            journal = self.client.search_read("account.journal", [("type", "=", "revenue")],
                                              ["id"], limit=1, order=[("id", "ASC")])
            if not journal or not config["default_account_receivable"]:
                raise PermanentError("Tryton has no revenue journal or no default receivable "
                                     "account: set up accounting first", code="TRYTON_SETUP")
            self._invoice_defaults = (int(config["default_account_receivable"]),
                                      int(product["default_uom"]), int(journal[0]["id"]))
        receivable, unit, journal_id = self._invoice_defaults
        codes = {str(c.payload.get("currency")) for c in commands} - set(self._currencies)
        if codes:
            self._currencies |= {row["code"]: row["id"] for row in self.client.search_read(
                "currency.currency", [("code", "in", sorted(codes))], ["code"])}
        parties = {c.idempotency_key: c.ref("customer", c.payload.get("customer"))
                   for c in commands}
        addresses = {row["id"]: row["addresses"] for row in self.client.read(
            "party.party", sorted({int(p) for p in parties.values() if p}), ["addresses"])}
        out: dict[str, InvoiceTargets | str] = {}
        for command in commands:
            party = parties[command.idempotency_key]
            currency = self._currencies.get(str(command.payload.get("currency")))
            if party is None:
                out[command.idempotency_key] = f"customer {command.payload.get('customer')} " \
                    "is not at Tryton"
            elif currency is None:
                out[command.idempotency_key] = f"currency {command.payload.get('currency')} " \
                    "is not set up in Tryton"
            elif not addresses.get(int(party)):
                out[command.idempotency_key] = f"Tryton party {party} has no address"
            else:
                out[command.idempotency_key] = InvoiceTargets(
                    int(party), int(addresses[int(party)][0]), currency, receivable, unit,
                    journal_id)
        return out

    def _invoices(self, commands: Sequence[OutboundCommand]) -> Results:
        results: Results = {}
        references = [str(c.payload.get("id")) for c in commands]
        found = {row["reference"]: row for row in self.client.search_read(
            "account.invoice", [("type", "=", "out"), ("reference", "in", references)],
            ["reference", "state"])}
        new = [c for c in commands if str(c.payload.get("id")) not in found]
        targets = self._invoice_targets(new) if new else {}
        create: list[tuple[OutboundCommand, dict[str, Any]]] = []
        for command in new:
            ids = targets[command.idempotency_key]
            try:
                if isinstance(ids, str):
                    raise MappingError(ids)
                create.append((command, invoice_values(command.payload, self.settings, ids)))
            except MappingError as exc:
                results[command.idempotency_key] = rejected(command, "INVALID_PAYLOAD", str(exc))
        created = self._create("account.invoice", create)
        invoice_ids = {str(c.payload.get("id")): int(created[c.idempotency_key].external_id
                                                     or 0)
                       for c, _values in create}
        invoice_ids |= {ref: int(row["id"]) for ref, row in found.items()}
        drafts = [c for c in commands if c.idempotency_key not in results
                  and found.get(str(c.payload.get("id")), {}).get("state", "draft")
                  in ("draft", "validated")]
        return results | self._post(commands, drafts, invoice_ids)

    def _post(self, commands: Sequence[OutboundCommand], drafts: Sequence[OutboundCommand],
              invoice_ids: Mapping[str, int]) -> Results:
        """Post the drafts whose Tryton totals are the hub's, to the cent; a
        draft that differs stays a draft in Tryton and is rejected."""
        results: Results = {}
        if drafts:
            totals = {row["reference"]: row for row in self.client.read(
                "account.invoice", [invoice_ids[str(c.payload.get("id"))] for c in drafts],
                ["reference", "untaxed_amount", "tax_amount", "total_amount"])}
            ready = []
            for command in drafts:
                reference = str(command.payload.get("id"))
                difference = totals_differ(command.payload, totals[reference])
                if difference:
                    results[command.idempotency_key] = rejected(
                        command, "TOTALS_DIFFER", f"Tryton draft invoice "
                        f"{invoice_ids[reference]} for {reference} differs from billbridge's: "
                        f"{difference}; it was left in draft")
                else:
                    ready.append(invoice_ids[reference])
            if ready:
                self._confirmed_post(ready)
        for command in commands:
            reference = str(command.payload.get("id"))
            if command.idempotency_key not in results and reference in invoice_ids:
                results[command.idempotency_key] = applied(command, invoice_ids[reference])
        return results

    def _confirmed_post(self, invoices: Sequence[int]) -> None:
        """``post``, confirming the warnings the settings accept, as a user
        answering "yes" would (a ``res.user.warning`` record, then again)."""
        confirmed: set[str] = set()
        while True:
            try:
                self.client.button("account.invoice", "post", invoices)
                return
            except TrytonError as exc:
                name = exc.warning
                if name is None or name in confirmed or not any(
                        name.endswith(f".{accepted}") or name == accepted
                        for accepted in self.settings.accept_warnings):
                    raise
                self.client.create("res.user.warning", [{"user": self.client.user_id,
                                                         "name": name, "always": False}])
                confirmed.add(name)


def _waves(commands: Sequence[OutboundCommand]) -> list[list[OutboundCommand]]:
    """The batch cut where a command writes a record an earlier command of the
    same wave writes too (a charge posted, reversed and posted again)."""
    waves: list[list[OutboundCommand]] = [[]]
    seen: set[str] = set()
    for command in commands:
        subject = _subject(command)
        if subject in seen:
            waves.append([])
            seen = set()
        waves[-1].append(command)
        seen.add(subject)
    return [w for w in waves if w]

