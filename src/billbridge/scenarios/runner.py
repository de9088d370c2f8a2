"""Run scenario files (format: ../shared/scenarios/) through the real flows
and engine on a fresh in-memory store with emulated ERP, CRM and PSA, and
compare what happened with `expect`.

Matching rules (the contract of the format): each list under `expect` must
match what happened item for item: the same number of items, in any order,
comparing only the fields given. A list left out is not checked; an empty
list means none at all.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from billbridge.domain.config import ConfigError
from billbridge.domain.events import PAYLOADS
from billbridge.emulation.recording import RecordingTarget
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSetup, build_hub
from billbridge.services import exceptions, invoices

SECTIONS = ("erp_customers", "erp_projects", "erp_postings", "erp_invoices", "writebacks",
            "time_charges", "invoices", "exceptions")
TOP_KEYS = ("name", "config", "events", "expect")
EVENT_KEYS = ("type", "source", "id", "at", "correlation_id", "data")


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

    @classmethod
    def not_run(cls, file: str, reason: str) -> ScenarioResult:
        """A file that could not be run: a failed result whose one difference says why."""
        return cls(file, "(not run)", False, [reason])


class _Loader(yaml.SafeLoader):
    """YAML that names the line of a date that does not exist (2026-02-30)."""

    def timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value} is not a date: {exc}", node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.timestamp)


def _read_yaml(path: Path, what: str) -> Any:
    try:
        text = path.read_text()
    except IsADirectoryError:
        raise ScenarioError(f"{path}: is a folder: name the {what} file"
                            + (f"s in it, e.g. {path}/*.yaml" if what == "scenario" else "")
                            ) from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise ScenarioError(f"{path}:{where} {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None


def _unknown(keys: Iterable[Any], known: tuple[str, ...], what: str, where: str) -> list[str]:
    """One problem per key not in ``known``, naming the nearest known one."""
    problems = []
    for key in keys:
        if key in known:
            continue
        near = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(known)}"
        problems.append(f"unknown {what} {key!r} {where}; {hint}")
    return problems


def check(scenario: Any) -> list[str]:
    """Every problem of a scenario document's shape: unknown keys at the top,
    in an event or under `expect`, unknown event types, lists that are not."""
    if not isinstance(scenario, dict):
        return ["a scenario is a mapping with `events` (a list) and `expect`"]
    problems = _unknown(scenario, TOP_KEYS, "key", "at the top level")
    events = scenario.get("events")
    if not isinstance(events, list):
        problems.append("a scenario needs `events` (a list)")
        events = []
    types = tuple(sorted(PAYLOADS))
    for number, event in enumerate(events, start=1):
        where = f"in event {number}"
        if not isinstance(event, dict):
            problems.append(f"event {number} is not a mapping")
            continue
        problems += _unknown(event, EVENT_KEYS, "key", where)
        if "type" not in event:
            problems.append(f"event {number} has no `type`")
        elif event["type"] not in PAYLOADS:
            problems += _unknown([event["type"]], types, "event type", where)
    expect = scenario.get("expect")
    if expect is not None and not isinstance(expect, dict):
        problems.append("`expect` must be a mapping of sections")
    elif expect:
        problems += _unknown(expect, SECTIONS, "section", "in `expect`")
        for section in SECTIONS:
            items = expect.get(section)
            if items is not None and not (isinstance(items, list)
                                          and all(isinstance(i, dict) for i in items)):
                problems.append(f"expect.{section} must be a list of mappings")
    return problems


def load(path: Path) -> dict[str, Any]:
    """A scenario file, checked strictly (ScenarioError names every problem),
    with its configuration read when `config` is a path."""
    loaded = _read_yaml(path, "scenario")
    problems = check(loaded)
    if problems:
        raise ScenarioError(f"{path}: " + "; ".join(problems))
    config = loaded.get("config") or {}
    if isinstance(config, str):
        config = _read_yaml(path.parent / config, "config") or {}
    loaded["config"] = config
    return dict(loaded)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _matches(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    return all(_text(actual.get(k)) == _text(v) for k, v in expected.items())


def _shown(item: dict[str, Any] | None, fields: list[str]) -> str:
    if item is None:
        return "none"
    return json.dumps({k: item.get(k) for k in fields} if fields else item, default=str)


def compare(section: str, expected: list[dict[str, Any]],
            actual: list[dict[str, Any]]) -> list[str]:
    """Differences between an expected list and what happened (any order): when
    the lists do not match, a summary and then every expected item beside the
    actual item nearest it (on the fields the expectation names), so that what
    to change in the file or the configuration is in view."""
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

    if len(expected) == len(actual) and assign(0) is not None:
        return []
    fields = list(dict.fromkeys(k for item in expected for k in item))
    remaining = list(actual)
    rows: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for item in expected:
        hit = next((a for a in remaining if _matches(item, a)), None)
        if hit is None:
            # The nearest: the actual item that agrees on the most fields given.
            hit = max(remaining, default=None, key=lambda a: sum(
                _text(a.get(k)) == _text(v) for k, v in item.items()))
        if hit is not None:
            remaining.remove(hit)
        rows.append(("matches" if hit is not None and _matches(item, hit) else "differs"
                     if hit is not None else "missing", item, hit))
    missed = sum(kind != "matches" for kind, _, _ in rows)
    out = [f"{section}: expected {len(expected)} item(s), got {len(actual)}; "
           f"{missed} expected item(s) not matched, {len(remaining)} unexpected"]
    for kind, item, hit in rows:
        out.append(f"{section}: {kind:8} expected {json.dumps(item, default=str)} | "
                   f"actual {_shown(hit, fields)}")
    for extra in remaining:
        out.append(f"{section}: extra    expected none | actual {_shown(extra, fields)}")
    return out


def run_document(scenario: dict[str, Any], *, file: str = "<inline>") -> ScenarioResult:
    """Run one scenario document; ScenarioError when it cannot be run (its shape,
    or its configuration), naming every problem on one line."""
    problems = check(scenario)
    if problems:
        raise ScenarioError(f"{file}: " + "; ".join(problems))
    erp, crm, psa = RecordingTarget("erp"), RecordingTarget("crm"), RecordingTarget("psa")
    clock = ManualClock()
    hub = build_hub(HubSetup(store="sqlite://", targets=[erp, crm, psa], clock=clock,
                             routes={"erp": "erp", "crm": "crm", "psa": "psa"}, seed=0))
    try:
        hub.activate_config(scenario.get("config") or {}, actor="scenario")
    except ConfigError as exc:
        head, *items = [line.strip() for line in str(exc).splitlines() if line.strip()]
        said = " ".join([head, "; ".join(items)]).strip()
        raise ScenarioError(f"{file}: config: {said}") from None
    for event in scenario["events"]:
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
        charges = invoices.live_charges(conn)
        raised = invoices.recorded(conn)
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
            "writebacks": writebacks, "time_charges": charges, "invoices": raised,
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


def run_files(paths: Iterable[Path],
              progress: Callable[[int, int], None] | None = None) -> list[ScenarioResult]:
    """One result per file, in order: a file that cannot be run is a failed
    result saying why, and the others still run. ``progress(done, total)``
    after each file."""
    files = list(paths)
    results = []
    for path in files:
        try:
            results.append(run_file(path))
        except ScenarioError as exc:
            results.append(ScenarioResult.not_run(str(path), str(exc)))
        if progress is not None:
            progress(len(results), len(files))
    return results
