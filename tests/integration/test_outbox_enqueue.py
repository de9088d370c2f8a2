"""`engine.outbox.enqueue_many`: new keys are inserted, held ones are repeats,
failed or superseded ones go back in the queue, in one call of mixed work."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, event, select, update

from billbridge.engine.outbox import NewCommand, enqueue_many
from billbridge.store.tables import outbox

AT = datetime(2026, 3, 31, 18, 0, tzinfo=UTC)


def _command(n: int) -> NewCommand:
    return NewCommand(target="ledger", kind="time_charge.post", origin=f"time_entry:te-{n}:v1",
                      payload={"charge": f"tc-{n}", "amount": "150.00"},
                      aggregate_key="project:P-1", correlation_id=f"c-{n}", inbox_id=n,
                      record_kind="time_charge", record_id=f"tc-{n}")


def _statuses(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.record_id: r.status for r in conn.execute(
            select(outbox.c.record_id, outbox.c.status).order_by(outbox.c.id))}


def test_a_mixed_call_inserts_the_new_revives_the_failed_and_keeps_the_rest(
        engine: Engine) -> None:
    with engine.begin() as conn:
        first = enqueue_many(conn, [_command(1), _command(2), _command(3)], at=AT)
        conn.execute(update(outbox).where(outbox.c.record_id == "tc-1").values(status="done"))
        conn.execute(update(outbox).where(outbox.c.record_id == "tc-2")
                     .values(status="failed", attempts=4, last_error="PERIOD_CLOSED"))
    with engine.begin() as conn:
        again = enqueue_many(conn, [_command(1), _command(2), _command(4), _command(3),
                                    _command(4), _command(5)], at=AT)
    assert again[:2] == first[:2] and again[3] == first[2]  # keys depend on content only
    assert again[2] == again[4]
    assert _statuses(engine) == {"tc-1": "done", "tc-2": "pending", "tc-3": "pending",
                                 "tc-4": "pending", "tc-5": "pending"}
    with engine.connect() as conn:
        revived = conn.execute(select(outbox.c.attempts, outbox.c.last_error)
                               .where(outbox.c.record_id == "tc-2")).one()
        ids = conn.execute(select(outbox.c.record_id).order_by(outbox.c.id)).scalars().all()
    assert tuple(revived) == (0, None)
    assert ids == ["tc-1", "tc-2", "tc-3", "tc-4", "tc-5"]  # the new ones in call order


def test_an_all_new_call_writes_every_command_once(engine: Engine) -> None:
    with engine.begin() as conn:
        keys = enqueue_many(conn, [_command(n) for n in range(50)], at=AT)
    assert len(set(keys)) == 50
    assert _statuses(engine) == {f"tc-{n}": "pending" for n in range(50)}


def test_an_all_new_call_inserts_once_without_returning(engine: Engine) -> None:
    statements: list[str] = []

    def seen(conn: object, cursor: object, sql: str, *args: object) -> None:
        statements.append(sql)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.begin() as conn:
            enqueue_many(conn, [_command(n) for n in range(50)], at=AT)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    inserts = [s for s in statements if s.startswith("INSERT INTO outbox")]
    assert len(inserts) == 1
    assert "RETURNING" not in inserts[0]
    assert not [s for s in statements if s.startswith("SELECT")]  # nothing looked up
