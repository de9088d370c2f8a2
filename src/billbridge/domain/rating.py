"""Rate resolution: the worker's override on the contract's rate card, else
the role rate, in the card version in force on the work date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billbridge.domain.config import Configuration
from billbridge.domain.records import RateCard


@dataclass(frozen=True, slots=True)
class Rate:
    hourly: Decimal
    currency: str
    card: RateCard
    basis: str  # "worker override" or "role <name>"


def rate_for(config: Configuration, card_id: str, worker_id: str, day: date) -> Rate | None:
    """The hourly rate for ``worker_id`` on ``day`` (the work date, not the
    posting date), or None when no card version or rate applies."""
    card = config.rate_card_in_force(card_id, day)
    worker = config.worker(worker_id)
    if card is None or worker is None:
        return None
    if worker_id in card.worker_overrides:
        return Rate(card.worker_overrides[worker_id], card.currency, card, "worker override")
    if worker.role in card.rates:
        return Rate(card.rates[worker.role], card.currency, card, f"role {worker.role}")
    return None
