"""How fast this machine runs Python right now, as one figure.

The machines here are shared and their speed changes from day to day (the
same code ran the 20,000-entry PostgreSQL burst at 3,107 entries/s one day
and 1,106 two sessions later). Every bench prints ``machine_reference_ms``,
the time this fixed workload takes, so that figures from different days can
be compared by their ratio to it rather than taken as they stand.

The workload is the hub's kind of work in miniature: Decimal money, dicts
built and read, JSON in and out, a hash. It must not change, or the figures
it calibrates stop being comparable: tests/unit/test_machine_reference.py
pins its checksum."""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from decimal import Decimal

ROUNDS = 5
ITEMS = 10_000


def workload(items: int = ITEMS) -> str:
    """The fixed work; returns a checksum of what it computed."""
    digest = hashlib.sha256()
    total = Decimal(0)
    for i in range(items):
        hours = Decimal(i % 17) / 2
        rate = Decimal("150.00") + Decimal(i % 5)
        amount = (hours * rate).quantize(Decimal("0.01"))
        total += amount
        record = {"id": f"te-{i}", "hours": str(hours), "amount": str(amount),
                  "project": f"PRJ-{i % 20}", "tags": [i % 3, i % 7]}
        text = json.dumps(record, sort_keys=True)
        back = json.loads(text)
        digest.update(back["id"].encode() + back["amount"].encode())
    digest.update(str(total).encode())
    return digest.hexdigest()[:16]


def reference_ms(rounds: int = ROUNDS) -> float:
    """The median time of ``rounds`` runs of the workload, in milliseconds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        workload()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def sitting() -> dict[str, float]:
    """How loaded the machine was as a bench started: the load averages (as
    `uptime` prints them) against its CPUs. Other people's work on a shared
    machine moves wall-clock rates; a load above the CPU count means every
    process waited for a core."""
    one, five, fifteen = os.getloadavg()
    return {"load_1m": round(one, 2), "load_5m": round(five, 2),
            "load_15m": round(fifteen, 2), "cpus": float(os.cpu_count() or 1)}
