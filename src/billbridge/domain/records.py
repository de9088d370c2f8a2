"""Canonical records of DOMAIN.md. Field names are a contract shared by every
connector and flow; add fields where a flow needs them, never rename."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billbridge.domain.money import Currency, DecimalStr, Hours


class Record(BaseModel):
    """Base of canonical records: strict about unknown fields so a mapping
    mistake is caught at the edge, not three steps later."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class Customer(Record):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    currency: Currency
    billing_country: str = Field(min_length=2, max_length=2, description="ISO 3166 alpha-2")
    tax_id: str | None = None
    legal_entity: str | None = None
    status: CustomerStatus = CustomerStatus.ACTIVE
    po_number: str | None = None
    # How this customer wants to be invoiced (from the CRM; defaults as most firms bill).
    invoice_grouping: Literal["project", "customer"] = "project"
    line_detail: Literal["entry", "task", "worker", "summary"] = "entry"


class LegalEntity(Record):
    code: str = Field(min_length=1)
    name: str
    country: str = Field(min_length=2, max_length=2)
    functional_currency: Currency


class Opportunity(Record):
    id: str = Field(min_length=1)
    customer: str | None = None
    name: str
    amount: DecimalStr
    currency: Currency
    stage: str = "closed_won"
    close_date: date


class BillingModel(StrEnum):
    TIME_AND_MATERIALS = "time_and_materials"
    FIXED_FEE = "fixed_fee"
    RETAINER = "retainer"
    MILESTONE = "milestone"


class MilestoneStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    ACCEPTED = "accepted"
    INVOICED = "invoiced"


class Milestone(Record):
    id: str = Field(min_length=1)
    contract: str | None = None
    name: str
    amount: DecimalStr
    due: date | None = None
    status: MilestoneStatus = MilestoneStatus.OPEN


class Retainer(Record):
    amount: DecimalStr
    period: Literal["month", "quarter"] = "month"
    included_hours: Hours
    overage_rate: DecimalStr


class Contract(Record):
    id: str = Field(min_length=1)
    customer: str | None = None
    opportunity: str | None = None
    billing_model: BillingModel
    currency: Currency
    legal_entity: str
    start: date
    end: date | None = None
    budget_cap: DecimalStr | None = None
    rate_card: str | None = None
    expense_markup_pct: DecimalStr = Field(default=Decimal(0))
    retainer: Retainer | None = None
    milestones: tuple[Milestone, ...] = ()

    @model_validator(mode="after")
    def _period_is_ordered(self) -> Self:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"contract {self.id}: end {self.end} is before start {self.start}")
        if self.billing_model is BillingModel.RETAINER and self.retainer is None:
            raise ValueError(f"contract {self.id}: a retainer contract needs retainer terms")
        return self


class ProjectStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    CLOSED = "closed"


class Task(Record):
    id: str = Field(min_length=1)
    project: str | None = None
    name: str
    billable: bool = True


class Project(Record):
    id: str | None = None
    contract: str | None = None
    code: str = Field(min_length=1)
    name: str
    status: ProjectStatus = ProjectStatus.PENDING
    tasks: tuple[Task, ...] = ()

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)


class Worker(Record):
    id: str = Field(min_length=1)
    name: str
    role: str
    legal_entity: str
    cost_rate: DecimalStr
    currency: Currency


class RateCard(Record):
    id: str = Field(min_length=1)
    version: int = Field(ge=1)
    currency: Currency
    effective_from: date
    effective_to: date | None = None
    rates: dict[str, DecimalStr] = Field(default_factory=dict)
    worker_overrides: dict[str, DecimalStr] = Field(default_factory=dict)

    def in_force_on(self, day: date) -> bool:
        ends_after = self.effective_to is None or day <= self.effective_to
        return self.effective_from <= day and ends_after


class EntryStatus(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"


class TimeEntry(Record):
    id: str = Field(min_length=1)
    worker: str = Field(min_length=1)
    project: str = Field(min_length=1, description="the source's project reference")
    task: str | None = None
    work_date: date
    hours: Hours = Field(ge=0, le=24)
    billable: bool = True
    notes: str = ""
    status: EntryStatus
    source_version: int = Field(ge=0)


class Expense(Record):
    id: str = Field(min_length=1)
    worker: str
    project: str
    date: date
    amount: DecimalStr
    currency: Currency
    category: str = ""
    billable: bool = True
    status: EntryStatus
    source_version: int = Field(default=0, ge=0)


class TimeCharge(Record):
    """The priced result of one approved TimeEntry."""

    id: str
    time_entry: str
    project: str
    task: str | None = None  # the entry's task: an ERP books the time against it
    worker: str
    work_date: date
    hours: Hours
    rate: DecimalStr
    amount: DecimalStr
    currency: Currency
    billable: bool
    tax_code: str | None = None
    rate_card: str | None = None
    rate_card_version: int | None = None
    config_version: int
    source_version: int


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    ISSUED = "issued"
    PAID = "paid"
    VOID = "void"


class InvoiceLine(Record):
    description: str
    quantity: DecimalStr
    unit_price: DecimalStr
    amount: DecimalStr
    tax_code: str | None = None
    source: str | None = None


class Invoice(Record):
    id: str
    customer: str
    project: str | None = None
    currency: Currency
    lines: tuple[InvoiceLine, ...] = ()
    subtotal: DecimalStr
    tax: DecimalStr
    total: DecimalStr
    status: InvoiceStatus = InvoiceStatus.DRAFT
    erp_id: str | None = None
    po_number: str | None = None
    config_version: int | None = None
    invoice_date: date | None = None  # the day the billing run raised it (UTC)
    period_end: date | None = None  # the last work date it bills
