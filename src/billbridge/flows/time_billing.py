"""Time to billing: approved time entries are checked in DOMAIN.md's order,
priced into TimeCharges under the contract's rate card and posted to the ERP;
changes after approval reverse and re-post; invoiced entries are never changed
silently (INVOICED_CHANGE); stale versions are ignored."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from billbridge.domain.billing import Rejection, charge_id, price_entry
from billbridge.domain.events import CanonicalEvent, ContractAmended, RecordDeleted
from billbridge.domain.reasons import ReasonCode
from billbridge.domain.records import Contract, EntryStatus, Project, TimeCharge, TimeEntry
from billbridge.flows.base import Command, FlowContext, FlowRegistry, Outcome, Problem, RecordChange
from billbridge.flows.common import project_and_contract, project_dependency

POSTED, INVOICED, REVERSED = "posted", "invoiced", "reversed"


def _committed(ctx: FlowContext, contract: str | None) -> Decimal:
    if contract is None:
        return Decimal(0)
    total = ctx.record("contract_total", contract)
    return Decimal(str(total["amount"])) if total else Decimal(0)


def _add_committed(ctx: FlowContext, outcome: Outcome, contract: str | None,
                   delta: Decimal) -> None:
    if contract is None or not delta:
        return
    # Several changes in one event must add up, so read what this outcome already set.
    pending = next((c for c in reversed(outcome.changes)
                    if c.kind == "contract_total" and c.id == contract), None)
    base = Decimal(str(pending.data["amount"])) if pending else _committed(ctx, contract)
    outcome.changes.append(RecordChange("contract_total", contract,
                                        {"contract": contract, "amount": str(base + delta)}))


def _reverse(ctx: FlowContext, outcome: Outcome, charge: dict[str, Any],
             contract: str | None) -> None:
    reversed_charge = {**charge, "status": REVERSED}
    outcome.changes.append(RecordChange("time_charge", str(charge["id"]), reversed_charge,
                                        REVERSED))
    posting = charge.get("posting")
    # A reversal is named after the posting it undoes, so that undoing a later
    # posting of the same amount is new work, never "already done". A charge
    # posted before postings were numbered has no number; its old origin stays.
    origin = f"reverse:{charge['id']}:p{posting}" if posting else \
        f"reverse:{charge['id']}:v{charge['source_version']}"
    outcome.commands.append(Command("erp", "time_charge.reverse", origin,
                                    {"charge": charge["id"], "amount": charge["amount"],
                                     "currency": charge["currency"]},
                                    "time_charge", str(charge["id"]),
                                    # The ERP reverses a posting it holds: the latest one.
                                    depends_on=("time_charge", str(charge["id"]))))
    if charge.get("billable"):
        _add_committed(ctx, outcome, contract, -Decimal(str(charge["amount"])))


def on_time_entry_upserted(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    entry: TimeEntry = event.record()
    previous = ctx.record("time_entry", entry.id)
    if previous is not None:
        applied = int(previous["source_version"])
        if entry.source_version < applied or (entry.source_version == applied and not ctx.replay):
            return Outcome(note=f"stale version {entry.source_version} of {entry.id} ignored")

    project, contract = project_and_contract(ctx, entry.project)
    if entry.status is EntryStatus.APPROVED and project is None:
        # Nothing changes until the project exists; the whole event runs again then.
        return Outcome(park_on=project_dependency(entry.project),
                       park_reason=ReasonCode.PROJECT_UNKNOWN.value)

    outcome = Outcome(changes=[RecordChange("time_entry", entry.id,
                                            entry.model_dump(mode="json"), entry.status.value)])
    charge = ctx.record("time_charge", charge_id(entry.id))
    live = charge if charge and charge.get("status") in (POSTED, INVOICED) else None
    if live is not None and live.get("status") == INVOICED:
        outcome.problems.append(Problem(
            ReasonCode.INVOICED_CHANGE,
            f"time entry {entry.id} changed (version {entry.source_version}) after it was "
            f"invoiced on {live.get('invoice')}: raise a credit note or re-bill by hand",
            "time_entry", entry.id))
        return outcome
    contract_id = contract.id if contract else None
    priced: TimeCharge | Rejection | None = None
    if entry.status is EntryStatus.APPROVED and project is not None:
        committed = _committed(ctx, contract_id)
        if live is not None and live.get("billable"):
            committed -= Decimal(str(live["amount"]))
        priced = price_entry(entry, project, contract, ctx.config, ctx.config_version,
                             committed=committed)
        if live is not None and project is not None and isinstance(priced, TimeCharge) and \
                _same_posting(live, priced):
            # A replay that prices the entry as it stands is the posting in
            # force, sent again under its own key: done, nothing happens; refused
            # by the ERP and fixed there since, it goes again.
            _send_post(outcome, priced, project, int(live["posting"]))
            outcome.resolved.append(("time_entry", entry.id))
            return outcome
    if live is not None:
        _reverse(ctx, outcome, dict(live), contract_id)
    if priced is None or project is None:
        return outcome
    if isinstance(priced, Rejection):
        outcome.problems.append(Problem(priced.reason, priced.message, "time_entry", entry.id))
        return outcome
    _post(ctx, outcome, priced, project, contract, charge, event)
    outcome.resolved.append(("time_entry", entry.id))
    return outcome


def _same_posting(live: Mapping[str, Any], charge: TimeCharge) -> bool:
    """``charge`` is what the numbered posting ``live`` already sent."""
    payload = charge.model_dump(mode="json")
    return bool(live.get("posting")) and all(live.get(k) == v for k, v in payload.items())


def _post(ctx: FlowContext, outcome: Outcome, charge: TimeCharge, project: Project,
          contract: Contract | None, previous: Mapping[str, Any] | None,
          cause: CanonicalEvent) -> None:
    """Post ``charge`` as the next posting of its charge: ``previous`` is the
    charge as stored before (any status), whose posting number this one follows;
    ``cause`` is the event that priced it (kept as ``priced_by``, source/id)."""
    posting = int((previous or {}).get("posting") or 0) + 1
    payload = charge.model_dump(mode="json")
    data = payload | {"status": POSTED, "contract": contract.id if contract else None,
                      "posting": posting, "priced_by": f"{cause.source}/{cause.id}"}
    outcome.changes.append(RecordChange("time_charge", charge.id, data, POSTED))
    if charge.billable:
        _add_committed(ctx, outcome, contract.id if contract else None, charge.amount)
    _send_post(outcome, charge, project, posting, payload)


def _send_post(outcome: Outcome, charge: TimeCharge, project: Project, posting: int,
               payload: dict[str, Any] | None = None) -> None:
    """``payload``: the charge's JSON form, when the caller has it already."""
    # Each posting of a charge has its own number: a re-pricing, a re-approval
    # or a replay is a new posting even when it returns to an earlier amount,
    # and its reversal names it (see _reverse).
    if payload is None:
        payload = charge.model_dump(mode="json")
    origin = f"time_charge:{charge.id}:p{posting}"
    outcome.commands.append(Command("erp", "time_charge.post", origin, payload, "time_charge",
                                    charge.id, depends_on=("project", project.code)))


def on_time_entry_deleted(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    deleted: RecordDeleted = event.record()
    charge = ctx.record("time_charge", charge_id(deleted.id))
    outcome = Outcome()
    stored = ctx.record("time_entry", deleted.id)
    if stored is not None:
        outcome.changes.append(RecordChange("time_entry", deleted.id, stored, "deleted"))
    if charge is None or charge.get("status") == REVERSED:
        return outcome
    if charge.get("status") == INVOICED:
        outcome.problems.append(Problem(ReasonCode.INVOICED_CHANGE,
                                        f"time entry {deleted.id} was deleted after it was "
                                        f"invoiced on {charge.get('invoice')}",
                                        "time_entry", deleted.id))
        return outcome
    _reverse(ctx, outcome, dict(charge), charge.get("contract"))
    return outcome


def _entry_reads(event: CanonicalEvent) -> list[tuple[str, str]]:
    """An entry event reads the entry, its charge and its project."""
    entry_id = str(event.data.get("id"))
    reads = [("time_entry", entry_id), ("time_charge", charge_id(entry_id))]
    if event.data.get("project"):
        reads.append(("project", str(event.data["project"])))
    return reads


def register(registry: FlowRegistry) -> None:
    registry.register("time_entry.upserted", on_time_entry_upserted, _entry_reads)
    registry.register("time_entry.deleted", on_time_entry_deleted, _entry_reads)
    registry.register("contract.amended", on_contract_amended)


def on_contract_amended(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    """Apply new contract terms from their effective date: re-price approved,
    uninvoiced entries dated on or after it (reverse, re-post); flag invoiced
    ones as INVOICED_CHANGE; re-try entries held before (a raised budget cap
    releases BUDGET_EXCEEDED)."""
    amended: ContractAmended = event.record()
    contract = amended.contract
    stored = ctx.record("contract", contract.id)
    if stored is not None:
        keep = {k: stored[k] for k in ("customer", "opportunity") if stored.get(k)}
        contract = contract.model_copy(update=keep)
    outcome = Outcome(changes=[RecordChange("contract", contract.id,
                                            contract.model_dump(mode="json"), "active")])
    projects = [Project.model_validate(p) for p in ctx.find("project")
                if p.get("contract") == contract.id]
    for project in projects:
        entries = [TimeEntry.model_validate(e) for e in ctx.find("time_entry", "approved")
                   if e.get("project") == project.code]
        for entry in sorted(entries, key=lambda e: (e.work_date, e.id)):
            charge = ctx.record("time_charge", charge_id(entry.id))
            status = charge.get("status") if charge else None
            if status == INVOICED:
                if entry.work_date >= amended.effective_date:
                    outcome.problems.append(Problem(
                        ReasonCode.INVOICED_CHANGE,
                        f"contract {contract.id} changed from {amended.effective_date}; time "
                        f"entry {entry.id} was already invoiced on "
                        f"{charge.get('invoice') if charge else '?'}",
                        "time_entry", entry.id))
                continue
            if status == POSTED and entry.work_date < amended.effective_date:
                continue  # posted under the terms in force on its date
            committed = _committed_after(ctx, outcome, contract.id)
            if status == POSTED and charge is not None:
                committed -= Decimal(str(charge["amount"])) if charge.get("billable") else 0
            priced = price_entry(entry, project, contract, ctx.config, ctx.config_version,
                                 committed=committed)
            if isinstance(priced, Rejection):
                continue  # still held; its open exception says why
            if status == POSTED and charge is not None:
                if str(priced.amount) == str(charge["amount"]) and \
                        str(priced.rate) == str(charge["rate"]):
                    continue
                _reverse(ctx, outcome, dict(charge), contract.id)
            _post(ctx, outcome, priced.model_copy(
                update={"source_version": entry.source_version}), project, contract, charge,
                event)
            outcome.resolved.append(("time_entry", entry.id))
    return outcome


def _committed_after(ctx: FlowContext, outcome: Outcome, contract: str) -> Decimal:
    pending = next((c for c in reversed(outcome.changes)
                    if c.kind == "contract_total" and c.id == contract), None)
    return Decimal(str(pending.data["amount"])) if pending else _committed(ctx, contract)
