"""What a configuration that parses can still get wrong: the checks behind
`billbridge config validate`, pure functions of a Configuration. Each finding
names the item at fault. An error is a configuration that cannot do what it
says (nothing in it, an override for a worker who is not there, a rate card
version never in force); a warning is one that works but leaves something
out of reach (a role no card prices, a card version or tax rule that never
applies, two versions of a card in force on the same days)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from billbridge.domain.config import Configuration, TaxRule
from billbridge.domain.records import RateCard

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    severity: Severity
    item: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.item}: {self.message}"


def findings(config: Configuration) -> list[Finding]:
    """Every finding, errors first, each group in the order of the document."""
    if config == Configuration():
        return [Finding("error", "configuration", "it is empty: nothing to price with (add "
                        "rate_cards, workers, legal_entities and tax_rules)")]
    found = [*unknown_override_workers(config), *unpriced_roles(config),
             *rate_card_periods(config), *unreachable_tax_rules(config)]
    return sorted(found, key=lambda f: f.severity != "error")


def _card(card: RateCard) -> str:
    return f"rate card {card.id} version {card.version}"


def unknown_override_workers(config: Configuration) -> list[Finding]:
    """An override for a worker id no worker has: a typo, or a worker removed."""
    workers = {w.id for w in config.workers}
    return [Finding("error", _card(card), f"overrides the rate of worker {worker!r}, who is "
                    "not in workers")
            for card in config.rate_cards for worker in card.worker_overrides
            if worker not in workers]


def unpriced_roles(config: Configuration) -> list[Finding]:
    """A worker whose role no card rates and whom no card overrides: every
    billable hour of theirs fails NO_RATE."""
    rated = {role for card in config.rate_cards for role in card.rates}
    overridden = {worker for card in config.rate_cards for worker in card.worker_overrides}
    return [Finding("warning", f"worker {w.id}", f"role {w.role!r} has no rate in any rate "
                    "card and no card overrides this worker: their billable time fails NO_RATE")
            for w in config.workers if w.role not in rated and w.id not in overridden]


def _days(card: RateCard) -> tuple[date, date]:
    return card.effective_from, card.effective_to or date.max


def _covered(start: date, end: date, spans: list[tuple[date, date]]) -> bool:
    """Whether ``spans`` together cover every day from ``start`` to ``end``."""
    for span_start, span_end in sorted(spans):
        if span_start > start:
            return False
        if span_end >= end:
            return True
        start = max(start, span_end + timedelta(days=1))
    return False


def rate_card_periods(config: Configuration) -> list[Finding]:
    """Per card id: a version never in force (ends before it starts), a version
    every day of which a newer version takes (the newest in force wins), and
    two versions in force on the same days."""
    versions: dict[str, list[RateCard]] = defaultdict(list)
    for card in config.rate_cards:
        versions[card.id].append(card)
    found: list[Finding] = []
    for cards in versions.values():
        cards.sort(key=lambda c: c.version)
        for i, card in enumerate(cards):
            start, end = _days(card)
            if end < start:
                found.append(Finding("error", _card(card), f"ends ({end}) before it starts "
                                     f"({start}): it is never in force"))
                continue
            newer = [_days(c) for c in cards[i + 1:] if _days(c)[0] <= _days(c)[1]]
            if _covered(start, end, newer):
                found.append(Finding("warning", _card(card), "is never used: newer versions "
                                     "are in force on every day of it"))
                continue
            for other in cards[i + 1:]:
                other_start, other_end = _days(other)
                first, last = max(start, other_start), min(end, other_end)
                if first <= last:
                    until = "on" if last == date.max else f"to {last}"
                    found.append(Finding("warning", _card(card), f"is in force on the same "
                                         f"days as version {other.version} (from {first} "
                                         f"{until}), where version {other.version} applies"))
    return found


def _rule(index: int, rule: TaxRule) -> str:
    condition = {None: "", True: ", with a tax id", False: ", without a tax id"}[
        rule.customer_has_tax_id]
    return (f"tax rule {index + 1} ({rule.entity_country} entity to {rule.customer_country} "
            f"customer{condition})")


def unreachable_tax_rules(config: Configuration) -> list[Finding]:
    """A rule for a country no legal entity is in; a rule whose condition an
    earlier rule repeats (the earlier one applies); a rule for either kind of
    customer when rules for both with and without a tax id take every case."""
    countries = {e.country for e in config.legal_entities}
    found: list[Finding] = []
    seen: dict[tuple[str, str, bool | None], int] = {}
    for i, rule in enumerate(config.tax_rules):
        if countries and rule.entity_country not in countries:
            found.append(Finding("warning", _rule(i, rule), "no legal entity is in "
                                 f"{rule.entity_country}, so it never applies"))
        key = (rule.entity_country, rule.customer_country, rule.customer_has_tax_id)
        if key in seen:
            found.append(Finding("warning", _rule(i, rule), f"repeats the condition of tax rule "
                                 f"{seen[key] + 1}, which applies instead"))
        else:
            seen[key] = i
    for (entity, customer, has_tax_id), i in seen.items():
        if (has_tax_id is None and (entity, customer, True) in seen
                and (entity, customer, False) in seen):
            found.append(Finding("warning", _rule(i, config.tax_rules[i]), "never applies: "
                                 "the rules for customers with and without a tax id take "
                                 "every case"))
    return found
