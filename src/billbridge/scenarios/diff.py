"""`billbridge config diff`: run a scenario suite under two configurations and
list the postings that would change: the preview finance reads before
approving a rate-card or tax change, or a connection's move to another API
version (scenarios.upgrade). Its throwaway hubs count nothing in the
live hub's metrics."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from billbridge.engine.metrics import uncounted
from billbridge.scenarios.runner import load, run_document
from billbridge.scenarios.upgrade import changed_versions, read_through

Progress = Callable[[int, int], None]
"""Called with (scenarios done, scenarios in all) as the diff goes."""


@dataclass(frozen=True)
class PostingChange:
    scenario: str
    kind: str  # time charge | invoice | exception
    subject: str
    before: str
    after: str


def _postings(actual: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for c in actual["time_charges"]:
        out[("time charge", str(c["time_entry"]))] = \
            f"{c['hours']} h x {c['rate']} = {c['amount']} {c['currency']}"
    for i in actual["invoices"]:
        out[("invoice", str(i["id"]))] = \
            f"{i['subtotal']} + tax {i['tax']} = {i['total']} {i['currency']}, {i['status']}"
    for e in actual["exceptions"]:
        out[("exception", f"{e['record']} {e['reason']}")] = "open"
    return out


def _without_versions(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "api_versions"}


def diff(old: dict[str, Any], new: dict[str, Any], scenarios: list[Path],
         progress: Progress | None = None) -> list[PostingChange]:
    changes: list[PostingChange] = []
    upgrades = changed_versions(old, new)  # an API version moved: read events through it
    # The suite runs with no vendor connection, so a proposal that only moves
    # API versions bills the same: a scenario whose events read the same in both
    # versions cannot change and is not run.
    versions_only = bool(upgrades) and _without_versions(old) == _without_versions(new)
    for done, path in enumerate(scenarios, start=1):
        scenario = load(path)
        variants = []
        for side, config in enumerate((old, new)):
            variant = copy.deepcopy(scenario)
            variant["config"] = config
            if upgrades:
                variant["events"] = read_through(
                    variant["events"], {name: pair[side] for name, pair in upgrades.items()})
            variants.append(variant)
        results: list[dict[tuple[str, str], str]] = [{}, {}]
        if not (versions_only and variants[0]["events"] == variants[1]["events"]):
            with uncounted():
                results = [_postings(run_document(v, file=str(path)).actual) for v in variants]
        before, after = results
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                changes.append(PostingChange(str(scenario.get("name", path.stem)), key[0], key[1],
                                             before.get(key, "—"), after.get(key, "—")))
        if progress:
            progress(done, len(scenarios))
    return changes
