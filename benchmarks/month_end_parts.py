"""The month-end path's parts one at a time, in this process's CPU time: an
event validated at intake, a stored event read back with its record (the
worker), a command's canonical JSON, the
outbox taking 1,000 new commands, and a claim of 500 from 10,000 pending
(SQLite, each call rolled back). Run it against two trees alternately, e.g.
`PYTHONPATH=src` and a checkout of an earlier commit's src, to compare them:

    .venv/bin/python benchmarks/month_end_parts.py --rounds 3

Prints one JSON line per round: µs a unit of each part."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from billbridge.domain.events import CanonicalEvent, parse_event
from billbridge.domain.idempotency import canonical_json
from billbridge.engine.dispatch import claiming
from billbridge.engine.outbox import NewCommand, enqueue_many
from billbridge.store.db import make_engine, migrate

AT = datetime(2026, 3, 31, tzinfo=UTC)
EVENT = {"type": "time_entry.upserted", "source": "generic", "id": "te-1:v1",
         "at": "2026-03-03T18:00:00Z",
         "data": {"id": "te-1", "worker": "w-1", "project": "P-1", "task": "dev",
                  "work_date": "2026-03-02", "hours": "1.5", "billable": True, "notes": "",
                  "status": "approved", "source_version": 1}}


def _charge(n: int, run: int) -> dict[str, Any]:
    return {"id": f"te-{run}-{n}:charge", "time_entry": f"te-{run}-{n}", "project": f"P-{n % 20}",
            "task": "dev", "worker": f"w-{n % 50}", "work_date": "2026-03-02", "hours": "7.50",
            "rate": "150.00", "amount": "1125.00", "currency": "USD", "billable": True,
            "tax_code": None, "rate_card": "rc", "rate_card_version": 1, "config_version": 1,
            "source_version": 1}


def _command(n: int, run: int) -> NewCommand:
    return NewCommand(target="ledger", kind="time_charge.post",
                      origin=f"time_charge:te-{run}-{n}:p1", payload=_charge(n, run),
                      aggregate_key=f"project:P-{n % 20}", correlation_id=f"c-{n}", inbox_id=n,
                      record_kind="time_charge", record_id=f"te-{run}-{n}:charge")


def _us(work: Callable[[], Any], times: int) -> float:
    started = time.process_time()
    for _ in range(times):
        work()
    return round((time.process_time() - started) / times * 1e6, 2)


def _store_parts(folder: str) -> dict[str, float]:
    engine = make_engine(f"sqlite:///{folder}/hub.db")
    migrate(engine)
    spent = 0.0
    for run in range(10):
        commands = [_command(n, run) for n in range(1000)]
        with engine.connect() as conn, conn.begin() as tx:
            started = time.process_time()
            enqueue_many(conn, commands, at=AT)
            spent += time.process_time() - started
            tx.rollback()
    enqueue = spent / 10_000 * 1e6
    with engine.begin() as conn:
        for run in range(10):
            enqueue_many(conn, [_command(n, 100 + run) for n in range(1000)], at=AT)
    spent, claimed = 0.0, 0
    for _ in range(20):
        with engine.connect() as conn, conn.begin() as tx:
            started = time.process_time()
            claimed += len(claiming.claim(conn, "ledger", 0, 500, lanes=[0], now=10**15,
                                          lookahead=4))
            spent += time.process_time() - started
            tx.rollback()
    engine.dispose()
    return {"enqueue_us_a_command": round(enqueue, 2),
            "claim_us_a_command_claimed": round(spent / claimed * 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stored = parse_event(EVENT).model_dump_json()
    charge = _charge(1, 0)
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bb-parts-") as folder:
            print(json.dumps({"event_at_intake_us": _us(lambda: parse_event(EVENT), 20_000),
                              "stored_event_with_record_us": _us(
                                  lambda: CanonicalEvent.model_validate_json(stored).record(),
                                  20_000),
                              "canonical_json_us": _us(lambda: canonical_json(charge), 20_000),
                              **_store_parts(folder)}), flush=True)


if __name__ == "__main__":
    main()
