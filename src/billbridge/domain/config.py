"""The governed configuration a flow prices under: one immutable snapshot per
approved version. Issue-by-issue it grows; what is here is what flows read."""

from __future__ import annotations

from datetime import date
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from billbridge.domain.money import Currency, DecimalStr
from billbridge.domain.records import LegalEntity, RateCard, Task, Worker


class ConfigError(ValueError):
    """A configuration document that cannot be activated, with every problem named."""


class TaxRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_country: str
    customer_country: str
    customer_has_tax_id: bool | None = None
    tax_code: str
    rate: DecimalStr  # a percentage: "20" is 20 %


class ClosedPeriod(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    legal_entity: str
    start: date
    end: date


class FxRate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    date: date
    from_currency: Currency = Field(alias="from")
    to_currency: Currency = Field(alias="to")
    rate: DecimalStr


class ProjectTemplate(BaseModel):
    """Tasks a new ERP project gets when the won deal names none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    tasks: tuple[Task, ...]


class AlertRules(BaseModel):
    """Thresholds that post an alert to a webhook; each fires once while it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_url: str | None = None
    max_open_exceptions: int | None = Field(default=None, ge=0)
    max_parked_minutes: int | None = Field(default=None, ge=0)
    max_queue_age_minutes: int | None = Field(default=None, ge=0)
    on_circuit_open: bool = True
    on_drift: bool = True  # a connection whose vendor drifted from its contract lately
    drift_window_minutes: int = Field(default=60, ge=1)


class Configuration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    legal_entities: tuple[LegalEntity, ...] = ()
    workers: tuple[Worker, ...] = ()
    rate_cards: tuple[RateCard, ...] = ()
    tax_rules: tuple[TaxRule, ...] = ()
    closed_periods: tuple[ClosedPeriod, ...] = ()
    fx_rates: tuple[FxRate, ...] = ()
    default_rate_card: str | None = None
    psa_system: str | None = None  # where project codes are written back, when there is one
    project_templates: tuple[ProjectTemplate, ...] = ()
    default_project_template: str | None = None
    field_mappings: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Per connection: canonical field → vendor field (read by connectors)."""
    api_versions: dict[str, str] = Field(default_factory=dict)
    """Connection → the vendor API version it speaks (Salesforce "v63.0", QuickBooks
    "75"): governed, so moving one is proposed, previewed and approved."""
    ownership: dict[str, str] = Field(default_factory=dict)
    """Object → the system that owns it (DOMAIN.md's source-of-truth table)."""
    alerts: AlertRules = Field(default_factory=AlertRules)

    @model_validator(mode="after")
    def _references_resolve(self) -> Configuration:
        entities = {e.code for e in self.legal_entities}
        problems = [
            f"worker {w.id}: legal entity {w.legal_entity!r} is not configured"
            for w in self.workers
            if entities and w.legal_entity not in entities
        ]
        seen: set[tuple[str, int]] = set()
        for card in self.rate_cards:
            if (card.id, card.version) in seen:
                problems.append(f"rate card {card.id} version {card.version} is defined twice")
            seen.add((card.id, card.version))
        cards = {c.id for c in self.rate_cards}
        if self.default_rate_card and self.default_rate_card not in cards:
            problems.append(f"default_rate_card {self.default_rate_card!r} is not a rate card")
        templates = {t.id for t in self.project_templates}
        if self.default_project_template and self.default_project_template not in templates:
            problems.append(f"default_project_template {self.default_project_template!r} "
                            "is not a project template")
        for period in self.closed_periods:
            if period.end < period.start:
                problems.append(f"closed period of {period.legal_entity} ends before it starts")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def legal_entity(self, code: str | None) -> LegalEntity | None:
        return next((e for e in self.legal_entities if e.code == code), None)

    @cached_property
    def _workers_by_id(self) -> dict[str, Worker]:
        found: dict[str, Worker] = {}
        for w in self.workers:
            found.setdefault(w.id, w)
        return found

    def worker(self, worker_id: str) -> Worker | None:
        # Asked twice per time entry: a lookup, not a scan of every worker.
        return self._workers_by_id.get(worker_id)

    def rate_card_in_force(self, card_id: str, day: date) -> RateCard | None:
        """The newest version of ``card_id`` in force on ``day``."""
        cards = [c for c in self.rate_cards if c.id == card_id and c.in_force_on(day)]
        return max(cards, key=lambda c: c.version, default=None)


def load_configuration(document: Any) -> Configuration:
    """Validate a configuration document, naming every problem in one error."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError("a configuration must be a mapping of sections")
    try:
        return Configuration.model_validate(document)
    except ValidationError as exc:
        lines = []
        for item in exc.errors(include_url=False):
            where = ".".join(str(p) for p in item["loc"]) or "configuration"
            lines.append(f"  {where}: {item['msg']}")
        raise ConfigError("configuration is not valid:\n" + "\n".join(lines)) from None
