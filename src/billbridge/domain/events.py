"""Canonical events: what connectors emit and flows consume.

An event is an envelope (type, source, id, at, correlation id) around one
record. ``parse_event`` is the single gate from raw input to a typed event: it
either returns a valid event or raises ``MalformedEvent`` saying what is wrong.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)

from billbridge.domain.records import (
    Contract,
    Customer,
    Expense,
    InvoiceStatus,
    Milestone,
    Opportunity,
    Project,
    Record,
    TimeEntry,
)
from billbridge.domain.times import as_utc


class MalformedEvent(ValueError):
    """Raw input that is not a valid canonical event."""


class OpportunityClosedWon(Record):
    opportunity: Opportunity
    customer: Customer
    contract: Contract
    project: Project


class ContractAmended(Record):
    contract: Contract
    effective_date: date
    project: str | None = None  # the project code it governs, when the CRM knows it


class RecordDeleted(Record):
    id: str = Field(min_length=1)
    project: str | None = None
    source_version: int | None = None


class MilestoneUpdated(Record):
    milestone: Milestone
    project: str


class InvoiceStatusChanged(Record):
    invoice: str
    erp_id: str | None = None
    status: InvoiceStatus
    amount_paid: str | None = None


class PostingConfirmed(Record):
    """Internal: a target confirmed it applied a command (emitted by the hub)."""

    target: str
    kind: str
    record_kind: str | None = None
    record_id: str | None = None
    external_id: str | None = None


class BillingRun(Record):
    period_end: date
    project: str | None = None
    requested_by: str | None = None  # the identity that committed the run, when one did


PAYLOADS: dict[str, type[BaseModel]] = {
    "customer.upserted": Customer,
    "opportunity.closed_won": OpportunityClosedWon,
    "contract.amended": ContractAmended,
    "time_entry.upserted": TimeEntry,
    "time_entry.deleted": RecordDeleted,
    "expense.upserted": Expense,
    "expense.deleted": RecordDeleted,
    "project.updated": Project,
    "milestone.updated": MilestoneUpdated,
    "invoice.status_changed": InvoiceStatusChanged,
    "billing.run": BillingRun,
    "posting.confirmed": PostingConfirmed,
}
"""Every canonical event type and the record it carries."""

HUB_SOURCE = "billbridge"
"""The hub's own source: its confirmations and billing runs. Never accepted from outside."""
ERP_ORIGIN = frozenset({"posting.confirmed", "invoice.status_changed"})
"""What the ERP holds (a posting confirmed, an invoice issued, paid or void): produced
only by the hub's own dispatcher and ERP readers, never accepted from outside, so no
caller can mark an invoice paid or rewrite an ERP id."""


class _Envelope(BaseModel):
    """What every event carries around its record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    source: str = Field(min_length=1)
    id: str = Field(min_length=1, max_length=200)
    at: AwareDatetime
    correlation_id: str | None = None

    @field_validator("at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in PAYLOADS:
            raise ValueError(f"unknown event type {value!r}; known: {', '.join(sorted(PAYLOADS))}")
        return value


class CanonicalEvent(_Envelope):
    data: dict[str, Any]

    def record(self) -> Any:
        """The typed record this event carries (validated on parse)."""
        return PAYLOADS[self.type].model_validate(self.data)

    @classmethod
    def _of(cls, typed: Any, data: dict[str, Any]) -> CanonicalEvent:
        """The event of a typed envelope already validated, with ``data``
        (the record's canonical JSON form) as its data."""
        # What ``model_construct`` sets, without its generic bookkeeping (a
        # third of the intake's parse); tests/unit/test_events.py checks that
        # the result equals, and dumps as, the event validated twice.
        event = cls.__new__(cls)
        _set(event, "__dict__", {"type": typed.type, "source": typed.source, "id": typed.id,
                                 "at": typed.at, "correlation_id": typed.correlation_id,
                                 "data": data})
        _set(event, "__pydantic_fields_set__", set(_FIELDS))
        _set(event, "__pydantic_extra__", None)
        _set(event, "__pydantic_private__", None)
        return event


_set = object.__setattr__
_FIELDS = frozenset(CanonicalEvent.model_fields)


_TYPED: dict[str, type[_Envelope]] = {
    kind: create_model(f"Typed_{kind.replace('.', '_')}", __base__=_Envelope,
                       data=(payload, ...))
    for kind, payload in PAYLOADS.items()}
"""Per event type, the envelope with its record as data: one validation
checks both."""


def explain(error: ValidationError, whole: str = "event") -> str:
    """A validation error as one line naming each field: `hours: not a decimal`."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or whole
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_event(raw: Any) -> CanonicalEvent:
    """Validate a raw mapping as a canonical event and its record."""
    if not isinstance(raw, dict):
        raise MalformedEvent(f"an event must be a JSON object, got {type(raw).__name__}")
    typed_model = _TYPED.get(raw["type"]) if isinstance(raw.get("type"), str) else None
    if typed_model is not None:
        try:
            typed: Any = typed_model.model_validate(raw)
        except ValidationError:
            pass  # the slower path below names every problem as it always has
        else:
            # Normalised to the record's canonical JSON form (see below).
            return CanonicalEvent._of(typed, typed.data.model_dump(mode="json"))
    try:
        event = CanonicalEvent.model_validate(raw)
    except ValidationError as exc:
        problems = explain(exc)
        payload = PAYLOADS.get(str(raw.get("type")))
        if payload is not None and isinstance(raw.get("data"), dict):
            # Name the record's problems too, so one look shows everything wrong.
            try:
                payload.model_validate(raw["data"])
            except ValidationError as data_exc:
                problems += "; " + "; ".join(f"data.{p}" for p in
                                             explain(data_exc).split("; "))
        raise MalformedEvent(problems) from None
    try:
        record = PAYLOADS[event.type].model_validate(event.data)
    except ValidationError as exc:
        raise MalformedEvent(f"{event.type} {event.id}: {explain(exc)}") from None
    # Normalise the data to its canonical JSON form so that stored events and
    # idempotency keys do not depend on how a source spelt a number or a date.
    return event.model_copy(update={"data": record.model_dump(mode="json")})


def aggregate_key(event: CanonicalEvent) -> str:
    """The unit of ordering: events with one key apply one at a time, in order.

    Work on one project (its activation, its time and expenses) shares the
    project's key so that a time entry can never overtake the activation that
    it depends on, and a budget cap sees entries one at a time.
    """
    data = event.data
    match event.type:
        case "time_entry.upserted" | "expense.upserted" | "project.updated":
            return f"project:{data.get('project') or data.get('code')}"
        case "time_entry.deleted" | "expense.deleted" | "milestone.updated":
            return f"project:{data.get('project') or data['id']}"
        case "opportunity.closed_won":
            return f"project:{data['project']['code']}"
        case "contract.amended" if data.get("project"):
            return f"project:{data['project']}"
        case "contract.amended":
            return f"contract:{data['contract']['id']}"
        case "customer.upserted":
            return f"customer:{data['id']}"
        case "invoice.status_changed":
            return f"invoice:{data['invoice']}"
        case "posting.confirmed" if data.get("record_kind") == "project":
            return f"project:{data['record_id']}"
        case "posting.confirmed":
            return f"{data.get('record_kind')}:{data.get('record_id')}"
        case _:
            return "billing"
