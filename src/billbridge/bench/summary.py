"""`make bench`: the standard set's figures in one JSON document.

The set is a burst of 20,000 entries on SQLite with one worker and with two
(each with the store's floor under its own rows, measured right after it),
`bench floor` over 20,000 entries, and `bench ingest` at 1,000 webhooks a
second for 30 s. Each writes its JSON line to a folder; this module reads
them and sets the figures issue 37 judges beside their targets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PARTS = ("burst_1_worker", "burst_2_workers", "floor", "ingest")


def summarise(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The parts as given, and each target of issue 37 with the figure it rests on."""
    one, two, ingest = parts["burst_1_worker"], parts["burst_2_workers"], parts["ingest"]
    return {
        **parts,
        "targets": {
            "two_workers_share_of_floor_ceiling": {
                "target": 0.5, "figure": two.get("share_of_floor_ceiling")},
            "one_worker_share_of_floor_ceiling": {
                "target": 0.35, "figure": one.get("share_of_floor_ceiling")},
            "hub_cpu_to_floor": {"target": 2.0, "figure": one.get("hub_cpu_to_floor")},
            "burst_duplicates_and_lost": {
                "target": 0, "figure": sum(p["duplicates"] + p["lost"] for p in (one, two))},
            "ingest_p99_ms": {"target": 10.0,
                              "figure": (ingest.get("ack_ms") or {}).get("p99")},
            "ingest_lost": {"target": 0, "figure": ingest.get("lost")},
        },
    }


def main(folder: str, out: str) -> None:
    parts = {name: json.loads((Path(folder) / f"{name}.json").read_text()) for name in PARTS}
    Path(out).write_text(json.dumps(summarise(parts), indent=2) + "\n")
    print(json.dumps(summarise(parts)["targets"], indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:3])
