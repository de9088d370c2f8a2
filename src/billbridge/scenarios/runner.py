"""Run scenario files (format: ../shared/scenarios/) through the real flows
and engine on a fresh in-memory store with emulated ERP, CRM and PSA, and
compare what happened with `expect`.

Matching rules (the contract of the format): each list under `expect` must
match what happened item for item: the same number of items, in any order,
comparing only the fields given. A list left out is not checked; an empty
list means none at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from billbridge.emulation.recording import RecordingTarget
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSetup, build_hub
from billbridge.services import billing, exceptions

SECTIONS = ("erp_customers", "erp_projects", "erp_postings", "erp_invoices", "writebacks",
            "time_charges", "invoices", "exceptions")


class ScenarioError(ValueError):
    """A scenario file that cannot be run, with what is wrong in it."""


@dataclass
class ScenarioResult:
    file: str
    name: str
    passed: bool
    differences: list[str] = field(default_factory=list)
    actual: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "name": self.name, "passed": self.passed,
                "differences": self.differences, "actual": self.actual}


def load(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("events"), list):
        raise ScenarioError(f"{path}: a scenario needs `events` (a list)")
    config = loaded.get("config") or {}
    if isinstance(config, str):
        config_path = (path.parent / config)
        config = yaml.safe_load(config_path.read_text())
    loaded["config"] = config
    return loaded


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _matches(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    return all(_text(actual.get(k)) == _text(v) for k, v in expected.items())


def compare(section: str, expected: list[dict[str, Any]],
            actual: list[dict[str, Any]]) -> list[str]:
    """Differences between an expected list and what happened (any order)."""
    differences = []
    if len(expected) != len(actual):
        differences.append(f"{section}: expected {len(expected)} item(s), got {len(actual)}")
    unmatched = list(range(len(actual)))

    def assign(i: int) -> list[int] | None:
        # Backtracking so that a loose expectation cannot steal another's match.
        if i == len(expected):
            return []
        for j in list(unmatched):
            if _matches(expected[i], actual[j]):
                unmatched.remove(j)
                rest = assign(i + 1)
                if rest is not None:
                    return [j, *rest]
                unmatched.append(j)
        return None

    if assign(0) is None:
        remaining = list(actual)
        for item in expected:
            hit = next((a for a in remaining if _matches(item, a)), None)
            if hit is None:
                differences.append(f"{section}: nothing matches {json.dumps(item, default=str)}")
            else:
                remaining.remove(hit)
        for extra in remaining if len(actual) > len(expected) else []:
            differences.append(f"{section}: unexpected {json.dumps(extra, default=str)}")
    return differences


def run_document(scenario: dict[str, Any], *, file: str = "<inline>") -> ScenarioResult:
    erp, crm, psa = RecordingTarget("erp"), RecordingTarget("crm"), RecordingTarget("psa")
    clock = ManualClock()
    hub = build_hub(HubSetup(store="sqlite://", targets=[erp, crm, psa], clock=clock,
                             routes={"erp": "erp", "crm": "crm", "psa": "psa"}, seed=0))
    hub.activate_config(scenario["config"], actor="scenario")
    for index, event in enumerate(scenario["events"]):
        if not isinstance(event, dict):
            raise ScenarioError(f"{file}: event {index + 1} is not a mapping")
        source = str(event.get("source") or "scenario")
        hub.ingest([{k: v for k, v in event.items()}], source=source)
        hub.run_until_idle()
    actual = collect(hub, erp, crm, psa)
    expect = scenario.get("expect") or {}
    # Whatever the file asks, the hub's records and what the ERP holds must agree.
    differences = disagreements(actual)
    for section in SECTIONS:
        if section in expect:
            differences += compare(section, list(expect[section] or []), actual[section])
    return ScenarioResult(file, str(scenario.get("name", file)), not differences, differences,
                          actual)


def collect(hub: Hub, erp: RecordingTarget, crm: RecordingTarget,
            psa: RecordingTarget) -> dict[str, list[dict[str, Any]]]:
    def latest(kind: str, key: str) -> list[dict[str, Any]]:
        by_key: dict[str, dict[str, Any]] = {}
        for payload in erp.of_kind(kind):
            by_key[str(payload[key])] = payload
        return list(by_key.values())

    with hub.engine.connect() as conn:
        charges = billing.live_charges(conn)
        invoices = billing.invoices(conn)
        # Work still parked at the end waits on something that never came: it is
        # listed with its park reason, as an operator would see it.
        open_exceptions = [{"record": w.record, "reason": w.reason, "message": w.message}
                           for w in exceptions.waiting(conn)]
    writebacks = [{"system": p["system"], "record": p["record"], **p.get("fields", {})}
                  for p in crm.of_kind("crm.writeback") + psa.of_kind("psa.writeback")]
    postings = [{**{k: p.payload.get(k) for k in POSTING_FIELDS}, "erp_id": p.external_id}
                for p in erp.postings.values() if p.live]
    return {"erp_customers": latest("customer.upsert", "id"),
            "erp_projects": latest("project.upsert", "code"),
            "erp_postings": postings, "erp_invoices": erp.of_kind("invoice.create"),
            "writebacks": writebacks, "time_charges": charges, "invoices": invoices,
            "exceptions": open_exceptions}


POSTING_FIELDS = ("id", "time_entry", "project", "hours", "rate", "amount", "currency",
                  "billable")


def _figures(item: dict[str, Any], fields: tuple[str, ...]) -> str:
    return ", ".join(f"{name} {item.get(name)}" for name in fields)


def disagreements(actual: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Where the hub's records and the ERP's live postings and invoices differ:
    each charge the hub holds live has exactly one live posting at the ERP,
    with the same hours, amount and currency, and nothing else is live; each
    invoice the hub raised is at the ERP once, with the same totals."""
    out = []
    figures = ("hours", "amount", "currency")
    live: dict[str, list[dict[str, Any]]] = {}
    for posting in actual["erp_postings"]:
        live.setdefault(str(posting["id"]), []).append(posting)
    hub = {str(c["id"]): c for c in actual["time_charges"]}
    for charge in sorted(set(hub) | set(live)):
        held, ours = live.get(charge, []), hub.get(charge)
        if ours is None:
            out.append(f"ERP disagrees: charge {charge} is not live in the hub, but the ERP "
                       "holds live " + "; ".join(f"{p['erp_id']} ({_figures(p, figures)})"
                                                 for p in held))
        elif len(held) != 1 or any(_text(held[0].get(f)) != _text(ours.get(f))
                                   for f in figures):
            seen = "; ".join(f"{p['erp_id']} ({_figures(p, figures)})" for p in held) or "none"
            out.append(f"ERP disagrees: the hub has charge {charge} live "
                       f"({_figures(ours, figures)}); the ERP's live postings: {seen}")
    totals = ("subtotal", "tax", "total", "currency")
    raised: dict[str, list[dict[str, Any]]] = {}
    for invoice in actual["erp_invoices"]:
        raised.setdefault(str(invoice["id"]), []).append(invoice)
    ours_invoices = {str(i["id"]): i for i in actual["invoices"]}
    for number in sorted(set(ours_invoices) | set(raised)):
        held, mine = raised.get(number, []), ours_invoices.get(number)
        if mine is None or len(held) != 1 or any(
                _text(held[0].get(f)) != _text(mine.get(f)) for f in totals):
            out.append(f"ERP disagrees on invoice {number}: the hub has "
                       f"{_figures(mine, totals) if mine else 'none'}; the ERP holds "
                       + ("; ".join(_figures(i, totals) for i in held) or "none"))
    return out


def run_file(path: Path) -> ScenarioResult:
    return run_document(load(path), file=str(path))
