"""A claim reads the lane's next commands whole when they all go, and looks
further past the ones held back when some do not."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy import Engine

from billbridge.engine.dispatch import claiming
from billbridge.engine.outbox import NewCommand, enqueue_many

AT = datetime(2026, 3, 31, 18, 0, tzinfo=UTC)


def _command(project: str, n: int, depends_on: str | None = None) -> NewCommand:
    return NewCommand(target="ledger", kind="time_charge.post", origin=f"{project}:{n}",
                      payload={"charge": f"{project}-{n}", "amount": "150.00"},
                      aggregate_key=f"project:{project}", correlation_id=f"c-{project}-{n}",
                      inbox_id=n, record_kind="time_charge", record_id=f"{project}-{n}",
                      depends_on=depends_on)


def _claim(engine: Engine, limit: int) -> list[str]:
    with engine.connect() as conn:
        rows = claiming.claim(conn, "ledger", 0, limit, lanes=[0], now=10**15, lookahead=4)
    assert all(orjson.loads(r.payload)["charge"] == r.record_id for r in rows)  # whole rows
    return [r.record_id for r in rows]


def test_a_claim_fills_its_batch_past_commands_held_back(engine: Engine) -> None:
    with engine.begin() as conn:
        # A's project is not at the ERP yet: A's commands wait, B's go past them.
        enqueue_many(conn, [_command("A", 1, depends_on="project:A"), _command("A", 2),
                            *[_command("B", n) for n in range(1, 6)]], at=AT)
    assert _claim(engine, 3) == ["B-1", "B-2", "B-3"]
    assert _claim(engine, 10) == ["B-1", "B-2", "B-3", "B-4", "B-5"]


def test_a_claim_of_commands_that_all_go_takes_the_next_ones_in_order(engine: Engine) -> None:
    with engine.begin() as conn:
        enqueue_many(conn, [_command("B", n) for n in range(1, 6)], at=AT)
    assert _claim(engine, 3) == ["B-1", "B-2", "B-3"]
