"""`store.bulk.Bulk`: one compiled statement run for many rows through the driver."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, bindparam, select, update

from billbridge.store.bulk import Bulk
from billbridge.store.tables import dispatch_lanes


def _leases(engine: Engine, names: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(dispatch_lanes.insert(), [
            {"target": n, "lane": 0, "lease_owner": None, "lease_until_ms": 0} for n in names])


def test_rows_and_shared_values_reach_the_store(engine: Engine) -> None:
    _leases(engine, ["a", "b", "c"])
    stamp = Bulk(lambda _: update(dispatch_lanes)
                 .where(dispatch_lanes.c.target == bindparam("name"))
                 .values(lease_owner=bindparam("owner"), lease_until_ms=bindparam("until")))
    with engine.begin() as conn:
        changed = stamp.run(conn, [{"name": "a", "until": 5}, {"name": "c", "until": 7}],
                            owner="w1")
        rows = conn.execute(select(dispatch_lanes.c.target, dispatch_lanes.c.lease_owner,
                                   dispatch_lanes.c.lease_until_ms)
                            .order_by(dispatch_lanes.c.target)).all()
    assert changed == 2
    assert rows == [("a", "w1", 5), ("b", None, 0), ("c", "w1", 7)]


def test_an_in_list_is_refused_with_a_clear_error(engine: Engine) -> None:
    """An expanding IN (…) is rendered per execution; the driver would get the
    placeholder text. It must fail when written, not on a rare path in production."""
    _leases(engine, ["a"])
    bad = Bulk(lambda _: update(dispatch_lanes)
               .where(dispatch_lanes.c.target == bindparam("name"),
                      dispatch_lanes.c.lane.in_([0, 1]))
               .values(lease_owner="x"))
    with engine.begin() as conn, pytest.raises(TypeError, match="IN"):
        bad.run(conn, [{"name": "a"}])


def test_awkward_values_arrive_exactly(engine: Engine) -> None:
    """Quotes, backslashes, newlines, JSON text, non-ASCII, NULLs, dates and
    booleans arrive as sent (PostgreSQL: through the one-document form)."""
    from datetime import date

    from billbridge.engine import facts
    from billbridge.store.tables import charge_facts

    awkward = ['say "hi"\\n', 'C:\\\\path\\\\', '{"a": [1, "b\\"c"]}', "Zürich – 東京", "", "\t"]
    rows = [{"id": f"tc-{i}", "time_entry": text_, "project": "P-1", "worker": text_ or "w",
             "work_date": date(2026, 3, 1 + i), "hours_e4": 10_000 * i, "amount_e4": -5,
             "currency": "EUR", "billable": i % 2 == 0, "status": "posted",
             "config_version": None if i % 2 else i}
            for i, text_ in enumerate(awkward)]
    with engine.begin() as conn:
        facts.upsert(conn, rows)
        # And again, changed: ON CONFLICT DO UPDATE through the same form.
        facts.upsert(conn, [{**r, "amount_e4": 7, "billable": not r["billable"]} for r in rows])
        stored = conn.execute(select(charge_facts).order_by(charge_facts.c.id)).all()
    assert [(r.id, r.time_entry, r.worker, r.work_date, r.hours_e4, r.amount_e4,
             r.billable, r.config_version) for r in stored] == \
        [(r["id"], r["time_entry"], r["worker"], r["work_date"], r["hours_e4"], 7,
          not r["billable"], r["config_version"]) for r in rows]


def _adder() -> Bulk:
    from billbridge.store.db import dialect_insert

    return Bulk(lambda conn: dialect_insert(conn)(dispatch_lanes)
                .values(target=bindparam("name"), lane=0, lease_owner=bindparam("owner"),
                        lease_until_ms=0)
                .on_conflict_do_nothing(index_elements=[dispatch_lanes.c.target,
                                                        dispatch_lanes.c.lane]),
                returning=(dispatch_lanes.c.target, dispatch_lanes.c.lease_owner))


def test_fetch_returns_only_the_rows_returning_names(engine: Engine) -> None:
    """``fetch`` runs an INSERT … RETURNING for many rows in one statement (set-
    based on PostgreSQL, a multi-row VALUES list elsewhere) and hands back its
    rows: those it inserted, not those ON CONFLICT skipped."""
    _leases(engine, ["a"])
    with engine.begin() as conn:
        returned = _adder().fetch(conn, [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                                  owner="w1")
        stored = conn.execute(select(dispatch_lanes.c.target, dispatch_lanes.c.lease_owner)
                              .order_by(dispatch_lanes.c.target)).all()
    assert sorted((r.target, r.lease_owner) for r in returned) == [("b", "w1"), ("c", "w1")]
    assert stored == [("a", None), ("b", "w1"), ("c", "w1")]


def test_fetch_of_more_rows_than_one_statement_holds(engine: Engine) -> None:
    """Past the rows one VALUES list may carry, ``fetch`` goes on in further
    statements: every row is written once and returned once."""
    from billbridge.store import bulk

    names = [f"t{i:04d}" for i in range(bulk._MAX_ROWS * 2 + 7)]
    _leases(engine, names[::3])
    with engine.begin() as conn:
        returned = _adder().fetch(conn, [{"name": n} for n in names], owner="w2")
        stored = conn.execute(select(dispatch_lanes.c.target)).scalars().all()
    assert sorted(r.target for r in returned) == [n for i, n in enumerate(names) if i % 3]
    assert sorted(stored) == names


def test_fetch_needs_columns_to_return(engine: Engine) -> None:
    from billbridge.store.db import dialect_insert

    plain = Bulk(lambda conn: dialect_insert(conn)(dispatch_lanes).values(
        target=bindparam("name"), lane=0, lease_owner=None, lease_until_ms=0))
    with engine.begin() as conn, pytest.raises(TypeError, match="returning"):
        plain.fetch(conn, [{"name": "x"}])
