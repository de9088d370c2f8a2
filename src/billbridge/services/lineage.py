"""Lineage that explains an amount: from the asked record (a time entry, charge,
invoice, ERP id, event…) up to what it was made from and down to what it led
to, each step with its amount and currency. Ancestors are followed only up and
descendants only down, so a sibling (another project's invoice of the same
billing run, another charge of the same invoice) never appears."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from billbridge.engine import lineage as correlations
from billbridge.errors import NotFound
from billbridge.store.tables import exceptions, inbox, outbox, records

# When an id names records of several kinds, the one that explains money first.
KIND_ORDER = ("invoice", "time_charge", "billable_line", "time_entry", "expense", "milestone",
              "contract", "project", "activation", "customer")
MAX_STEPS = 400  # a tree larger than this is cut, saying so


@dataclass
class Step:
    """One node of the tree: what it is, its amount, and the facts that explain it."""

    kind: str  # event | a record kind | line | posting | exception
    id: str
    status: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    facts: dict[str, str] = field(default_factory=dict)
    up: list[Step] = field(default_factory=list)  # what it was made from
    down: list[Step] = field(default_factory=list)  # what it led to
    notes: dict[str, str] = field(default_factory=dict, repr=False)  # the walk's own

    @property
    def money(self) -> str:
        if self.amount is None:
            return ""
        return f"{self.amount} {self.currency or '(no currency)'}"


@dataclass
class Tree:
    query: str
    root: Step
    cut: bool = False  # more than MAX_STEPS steps: the rest is not shown


def trace(conn: Connection, ident: str) -> Tree:
    """The tree around ``ident``; NotFound when nothing is known by it."""
    walk = _Walk(conn)
    root = walk.resolve(ident)
    if root is None:
        raise NotFound(f"nothing is known by {ident!r}: give a record id (time entry, charge, "
                       "invoice…), an event id, an ERP id or an idempotency key")
    walk.expand(root, "up")
    walk.expand(root, "down")
    return Tree(ident, root, cut=walk.count >= MAX_STEPS)


def as_json(found: Tree) -> dict[str, Any]:
    return {"query": found.query, "cut": found.cut, "root": _step_json(found.root)}


def _step_json(step: Step) -> dict[str, Any]:
    return {"kind": step.kind, "id": step.id, "status": step.status,
            "amount": None if step.amount is None else str(step.amount),
            "currency": step.currency, "facts": step.facts,
            "up": [_step_json(s) for s in step.up], "down": [_step_json(s) for s in step.down]}


def _decimal(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


class _Walk:
    """The lookups, each step built once per tree."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.count = 0

    # ---- finding the asked step
    def resolve(self, ident: str) -> Step | None:
        found = self._record_named(ident)
        if found is not None:
            return found
        # An id a target gave twice (a ledger emptied and started again) names
        # its newest posting.
        command = self.conn.execute(select(outbox).where(or_(
            outbox.c.external_id == ident, outbox.c.idempotency_key == ident))
            .order_by(outbox.c.id.desc()).limit(1)).first()
        if command is not None:
            return self._posting(command._mapping)
        event = self._event_named(ident)
        if event is not None:
            return event
        # A correlation id or a binding: the first event of that chain.
        chains = correlations.trace(self.conn, ident).correlation_ids
        if chains:
            row = self.conn.execute(select(inbox).where(inbox.c.correlation_id.in_(chains))
                                    .order_by(inbox.c.id).limit(1)).first()
            if row is not None:
                return self._event(row._mapping)
        return None

    def _record_named(self, ident: str) -> Step | None:
        rows = {r.kind: r for r in self.conn.execute(select(records).where(
            records.c.id == ident))}
        for kind in (*KIND_ORDER, *sorted(rows)):
            if kind in rows:
                return self._record(rows[kind]._mapping)
        return None

    def _event_named(self, ident: str) -> Step | None:
        numeric = int(ident) if ident.isascii() and ident.isdigit() and len(ident) < 19 else None
        row = self.conn.execute(select(inbox).where(or_(
            inbox.c.event_id == ident, inbox.c.id == numeric)).order_by(inbox.c.id)
            .limit(1)).first()
        return None if row is None else self._event(row._mapping)

    # ---- building steps
    def _step(self, kind: str, ident: str, **kw: Any) -> Step:
        self.count += 1
        return Step(kind, ident, **kw)

    def _get(self, kind: str, ident: str | None) -> Step | None:
        if not ident:
            return None
        row = self.conn.execute(select(records).where(records.c.kind == kind,
                                                      records.c.id == ident)).first()
        return None if row is None else self._record(row._mapping)

    def _record(self, row: Any) -> Step:
        data = json.loads(row["data"])
        step = self._step(row["kind"], row["id"], status=row["status"],
                          amount=_decimal(data.get("total", data.get("amount"))),
                          currency=data.get("currency"))
        step.facts = _facts(row["kind"], data, row["config_version"])
        step.notes["data"] = row["data"]
        return step

    def _event(self, row: Any) -> Step:
        payload = json.loads(row["payload"]) if row["payload"] else {}
        facts = {"type": row["event_type"], "source": row["source"],
                 "received": f"{row['received_at']:%Y-%m-%d %H:%M:%S} UTC"}
        if row["duplicates"]:
            facts["repeats dropped"] = str(row["duplicates"])
        data = payload.get("data") or {}
        if row["event_type"] == "invoice.status_changed":
            facts["invoice status"] = str(data.get("status"))
        if row["waiting_on"]:
            facts["waiting on"] = row["waiting_on"]
        step = self._step("event", row["event_id"], status=row["status"],
                          amount=_decimal(data.get("amount_paid")))
        step.facts = facts
        step.notes = {"inbox": str(row["id"]), "data": json.dumps(data)}
        return step

    def _posting(self, row: Any) -> Step:
        payload = json.loads(row["payload"]) if row["payload"] else {}
        amount = _decimal(payload.get("total", payload.get("amount")))
        step = self._step("posting", str(row["id"]), status=row["status"], amount=amount,
                          currency=payload.get("currency") if amount is not None else None)
        step.facts = {"command": row["kind"], "target": row["target"],
                      "of": f"{row['record_kind']} {row['record_id']}",
                      "external id": row["external_id"] or "(none yet)",
                      "idempotency key": row["idempotency_key"],
                      "attempts": str(row["attempts"])}
        step.notes = {"record": f"{row['record_kind']}:{row['record_id']}"}
        return step

    def _exceptions(self, kind: str | None, ident: str | None = None,
                    inbox_id: int | None = None, outbox_id: int | None = None) -> list[Step]:
        if outbox_id is not None:
            where = exceptions.c.outbox_id == outbox_id
        elif inbox_id is not None:
            where = exceptions.c.inbox_id == inbox_id
        else:
            where = and_(exceptions.c.record_kind == kind, exceptions.c.record_id == ident)
        found = []
        for row in self.conn.execute(select(exceptions).where(where).order_by(exceptions.c.id)):
            step = self._step("exception", str(row.id), status=row.status)
            step.facts = {"reason": row.reason, "message": row.message}
            found.append(step)
        return found

    def expand(self, step: Step, way: str) -> None:
        """Ancestors (``up``) followed only upwards, descendants (``down``)
        only downwards: no sibling is ever reached."""
        if self.count >= MAX_STEPS:
            return
        found = self._parents(step) if way == "up" else self._children(step)
        setattr(step, way, found)
        for nxt in found:
            self.expand(nxt, way)

    # ---- ancestors
    def _parents(self, step: Step) -> list[Step]:
        data = json.loads(step.notes.get("data", "{}"))
        if step.kind in ("time_entry", "expense", "milestone"):
            return self._source_events(step.kind, step.id, data)
        if step.kind == "time_charge":
            return [s for s in [self._get("time_entry", data.get("time_entry"))] if s]
        if step.kind == "billable_line":
            origin = ("expense" if step.id.startswith("ex_") else "milestone", step.id[3:])
            return [s for s in [self._get(*origin)] if s]
        if step.kind == "invoice":
            return self._invoice_parents(step, data)
        if step.kind == "line":
            return [s for source in data.get("source", "").split(",")
                    for s in [self._get("time_charge", source) or
                              self._get("billable_line", source)] if s]
        if step.kind == "posting":
            kind, _, ident = step.notes["record"].partition(":")
            return [s for s in [self._get(kind, ident)] if s]
        if step.kind == "event" and step.facts["type"] == "invoice.status_changed":
            return [s for s in [self._get("invoice", data.get("invoice"))] if s]
        if step.kind == "event" and step.facts["type"] == "posting.confirmed":
            # The dispatcher's note that a command was applied: its command.
            key = step.id.split(":", 2)[-1]
            return [self._posting(r._mapping) for r in self.conn.execute(
                select(outbox).where(outbox.c.idempotency_key == key,
                                     outbox.c.target == data.get("target")))]
        return []

    def _source_events(self, kind: str, ident: str, data: dict[str, Any]) -> list[Step]:
        rows = self.conn.execute(select(inbox).where(
            inbox.c.event_type.like(f"{kind}.%"), inbox.c.payload.contains(ident))
            .order_by(inbox.c.id))
        return [self._event(r._mapping) for r in rows
                if (json.loads(r.payload).get("data") or {}).get("id") == ident
                or _nested_id(json.loads(r.payload).get("data") or {}, kind) == ident]

    def _invoice_parents(self, step: Step, data: dict[str, Any]) -> list[Step]:
        parents = []
        for number, line in enumerate(data.get("lines", []), 1):
            shown = self._step("line", f"line {number} of {step.id}",
                               amount=_decimal(line.get("amount")), currency=step.currency)
            shown.facts = {"description": str(line.get("description")),
                           "quantity": str(line.get("quantity")),
                           "unit price": f"{line.get('unit_price')} {step.currency}",
                           "tax code": str(line.get("tax_code"))}
            shown.notes = {"data": json.dumps({"source": line.get("source") or ""})}
            parents.append(shown)
        run = self.conn.execute(select(inbox).join(outbox, outbox.c.inbox_id == inbox.c.id)
                                .where(outbox.c.record_kind == "invoice",
                                       outbox.c.record_id == step.id,
                                       outbox.c.kind == "invoice.create")
                                .order_by(inbox.c.id).limit(1)).first()
        if run is not None:
            parents.append(self._event(run._mapping))
        return parents

    # ---- descendants
    def _children(self, step: Step) -> list[Step]:
        data = json.loads(step.notes.get("data", "{}"))
        if step.kind == "event":
            return self._event_children(step, data)
        if step.kind == "posting":
            found = self._exceptions(None, outbox_id=int(step.id))
            kind, _, ident = step.notes["record"].partition(":")
            if kind == "invoice" and step.facts["command"] == "invoice.create":
                found += self._status_events(ident)
            return found
        if step.kind in ("line", "exception"):
            return []
        found = self._exceptions(step.kind, step.id)
        if step.kind == "time_entry":
            found += [s for s in [self._get("time_charge", f"tc_{step.id}")] if s]
        elif step.kind in ("expense", "milestone"):
            found += [s for s in [self._get("billable_line",
                                            f"{step.kind[:2]}_{step.id}")] if s]
        found += self._postings(step.kind, step.id, "invoice.create" if step.kind == "invoice"
                                else None)
        if step.kind in ("time_charge", "billable_line"):
            found += [s for s in [self._get("invoice", data.get("invoice"))] if s]
        if step.kind == "invoice" and not any(s.kind == "posting" for s in found):
            found += self._status_events(step.id)  # else under the posting
        return found

    def _status_events(self, invoice: str) -> list[Step]:
        """What the ERP said of the invoice since: issued, paid, void."""
        return [self._event(r._mapping) for r in self.conn.execute(
            select(inbox).where(inbox.c.aggregate_key == f"invoice:{invoice}",
                                inbox.c.event_type == "invoice.status_changed")
            .order_by(inbox.c.id))]

    def _postings(self, kind: str, ident: str, only: str | None) -> list[Step]:
        query = select(outbox).where(outbox.c.record_kind == kind, outbox.c.record_id == ident)
        if only:
            query = query.where(outbox.c.kind == only)
        return [self._posting(r._mapping) for r in self.conn.execute(query.order_by(outbox.c.id))]

    def _event_children(self, step: Step, data: dict[str, Any]) -> list[Step]:
        inbox_id = int(step.notes["inbox"])
        kind = step.facts["type"].split(".")[0]
        named = self._get(kind, str(data.get("id") or _nested_id(data, kind) or ""))
        if named is not None and step.facts["type"] != "invoice.status_changed":
            return [named, *self._exceptions(None, inbox_id=inbox_id)]
        made = [self._posting(r._mapping) for r in self.conn.execute(
            select(outbox).where(outbox.c.inbox_id == inbox_id).order_by(outbox.c.id))]
        return made + self._exceptions(None, inbox_id=inbox_id)


def _nested_id(data: dict[str, Any], kind: str) -> str | None:
    inner = data.get(kind)
    return str(inner.get("id")) if isinstance(inner, dict) and inner.get("id") else None


def _facts(kind: str, data: dict[str, Any], config_version: int | None) -> dict[str, str]:
    """What explains a record's amount, in the words of its kind."""
    facts: dict[str, str] = {}
    if kind == "time_entry":
        facts = {"worker": str(data.get("worker")), "project": str(data.get("project")),
                 "work date": str(data.get("work_date")), "hours": str(data.get("hours")),
                 "billable": "yes" if data.get("billable") else "no"}
    elif kind == "time_charge":
        facts = {"hours × rate": f"{data.get('hours')} h × {data.get('rate')} "
                                 f"{data.get('currency')}",
                 "rate card": f"{data.get('rate_card')} v{data.get('rate_card_version')}",
                 "worker": str(data.get("worker")), "work date": str(data.get("work_date"))}
    elif kind == "invoice":
        facts = {"project": str(data.get("project") or "(several)"),
                 "customer": str(data.get("customer")),
                 "subtotal": f"{data.get('subtotal')} {data.get('currency')}",
                 "tax": f"{data.get('tax')} {data.get('currency')}",
                 "period end": str(data.get("period_end"))}
        if data.get("erp_id"):
            facts["ERP id"] = str(data["erp_id"])
    elif kind in ("billable_line", "expense", "milestone"):
        facts = {k: str(data[k]) for k in ("description", "project", "date", "category")
                 if data.get(k)}
    if config_version is not None:
        facts["config"] = f"v{config_version}"
    return facts



def headline(step: Step) -> str:
    """The step in one line: what, which, its state and its amount."""
    command = step.facts.get("command", "")
    what = {"posting": f"{'write-back' if 'writeback' in command else 'ERP posting'} "
                       f"#{step.id} {command} → {step.facts.get('target', '')} "
                       f"{step.facts.get('external id', '')}",
            "event": f"event {step.facts.get('source', '')} {step.id} "
                     f"{step.facts.get('type', '')}",
            "exception": f"exception #{step.id} {step.facts.get('reason', '')}",
            "line": step.id}.get(step.kind, f"{step.kind} {step.id}")
    if "invoice status" in step.facts:
        what = f"invoice {step.facts['invoice status']} ({what})"
    parts = [what, step.status or "", step.money]
    return " · ".join(p for p in parts if p)


def details(step: Step) -> str:
    """The facts that explain the step, in one line."""
    skip = {"posting": ("command", "target", "external id"),
            "event": ("source", "type", "invoice status"),
            "exception": ("reason",)}.get(step.kind, ())
    return " · ".join(f"{k} {v}" for k, v in step.facts.items() if k not in skip)
