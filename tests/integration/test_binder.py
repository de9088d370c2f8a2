"""The xref binder: a canonical record's id in each system, and back; a
binding once made stays, and binding it again changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from billbridge.store import binder

AT = datetime(2026, 3, 31, 18, 0, tzinfo=UTC)


def _bind(engine: Engine, *rows: tuple[str, str, str, str, str]) -> None:
    with engine.begin() as conn:
        binder.bind(conn, [{"system": s, "kind": k, "external_id": e, "canonical_id": c,
                            "correlation_id": corr} for s, k, e, c, corr in rows], at=AT)


def test_a_record_is_found_by_its_id_in_a_system_and_that_id_by_the_record(
        engine: Engine) -> None:
    _bind(engine, ("ledger", "project", "L-7", "GLX-001", "c-1"),
          ("crm", "project", "deal-9", "GLX-001", "c-1"))
    with engine.connect() as conn:
        assert binder.to_external(conn, "ledger", "project", "GLX-001") == "L-7"
        assert binder.to_external(conn, "crm", "project", "GLX-001") == "deal-9"
        assert binder.to_internal(conn, "ledger", "project", "L-7") == "GLX-001"
        assert binder.to_external(conn, "ledger", "customer", "GLX-001") is None
        assert binder.to_internal(conn, "crm", "project", "L-7") is None


def test_binding_again_keeps_the_first_binding(engine: Engine) -> None:
    _bind(engine, ("ledger", "project", "L-7", "GLX-001", "c-1"))
    _bind(engine, ("ledger", "project", "L-7", "GLX-999", "c-2"))
    with engine.connect() as conn:
        assert binder.to_internal(conn, "ledger", "project", "L-7") == "GLX-001"
        assert [b["correlation_id"] for b in binder.made_in(conn, ["c-1", "c-2"])] == ["c-1"]


def test_for_target_names_every_kind_bound_at_that_system_only(engine: Engine) -> None:
    _bind(engine, ("ledger", "project", "L-7", "GLX-001", "c-1"),
          ("ledger", "customer", "L-C1", "cust-1", "c-1"),
          ("crm", "customer", "acct-1", "cust-2", "c-2"))
    with engine.connect() as conn:
        assert binder.for_target(conn, "ledger", ["GLX-001", "cust-1", "cust-2"]) == {
            "project:GLX-001": "L-7", "customer:cust-1": "L-C1"}
        assert binder.for_target(conn, "ledger", []) == {}


def test_lineage_finds_a_binding_by_either_id_and_lists_a_correlation_s_bindings(
        engine: Engine) -> None:
    _bind(engine, ("ledger", "project", "L-7", "GLX-001", "c-1"),
          ("ledger", "project", "L-8", "GLX-002", "c-2"))
    with engine.connect() as conn:
        assert binder.correlations_naming(conn, "L-7") == {"c-1"}
        assert binder.correlations_naming(conn, "GLX-002") == {"c-2"}
        assert binder.correlations_naming(conn, "nothing") == set()
        assert [b["external_id"] for b in binder.made_in(conn, ["c-2"])] == ["L-8"]
