"""The xref binder: which id each system gives a canonical record, and back
(the vocabulary of OCA's connector binder). Every reader and writer of the
``xref`` table goes through here. A binding, once made, stays; binding it
again changes nothing."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Connection, String, any_, bindparam, or_, select

from billbridge.store.bulk import Bulk
from billbridge.store.db import dialect_insert
from billbridge.store.tables import xref

_BIND = Bulk(lambda conn: dialect_insert(conn)(xref).values(
    system=bindparam("system"), kind=bindparam("kind"), external_id=bindparam("external_id"),
    canonical_id=bindparam("canonical_id"), correlation_id=bindparam("correlation_id"),
    created_at=bindparam("created_at")).on_conflict_do_nothing())


def bind(conn: Connection, bindings: Sequence[Mapping[str, Any]], *, at: datetime) -> None:
    """Write bindings (system, kind, external_id, canonical_id, correlation_id)
    made at ``at``, with one statement."""
    _BIND.run(conn, bindings, created_at=at)


def to_external(conn: Connection, system: str, kind: str, canonical_id: str) -> str | None:
    """The id ``system`` gives the canonical record, if it is bound there."""
    row = conn.execute(select(xref.c.external_id).where(
        xref.c.system == system, xref.c.kind == kind,
        xref.c.canonical_id == canonical_id)).first()
    return None if row is None else str(row[0])


def to_internal(conn: Connection, system: str, kind: str, external_id: str) -> str | None:
    """The canonical id of ``system``'s record ``external_id``, if it is bound."""
    row = conn.execute(select(xref.c.canonical_id).where(
        xref.c.system == system, xref.c.kind == kind,
        xref.c.external_id == external_id)).first()
    return None if row is None else str(row[0])


def for_target(conn: Connection, system: str, canonical_ids: Collection[str]) -> dict[str, str]:
    """The ids ``system`` gives the canonical ids named (of any kind), as
    ``{"kind:canonical_id": external_id}``: one query for a dispatch round."""
    if not canonical_ids:
        return {}
    if conn.dialect.name == "postgresql":
        # One array parameter, not an IN list of a thousand (each rendered and
        # bound in Python).
        named = bindparam("named", sorted(canonical_ids), type_=ARRAY(String))
        which = xref.c.canonical_id == any_(named)
    else:
        which = xref.c.canonical_id.in_(sorted(canonical_ids))
    query = select(xref.c.kind, xref.c.canonical_id, xref.c.external_id).where(
        xref.c.system == system, which)
    return {f"{r.kind}:{r.canonical_id}": r.external_id for r in conn.execute(query)}


def correlations_naming(conn: Connection, ident: str) -> set[str]:
    """The correlation ids of the bindings whose external or canonical id is ``ident``."""
    return {r[0] for r in conn.execute(select(xref.c.correlation_id).where(
        or_(xref.c.external_id == ident, xref.c.canonical_id == ident)))}


def made_in(conn: Connection, correlation_ids: Collection[str]) -> list[dict[str, Any]]:
    """Every binding made on behalf of the correlation ids: the postings of a lineage."""
    return [dict(r._mapping) for r in conn.execute(
        select(xref).where(xref.c.correlation_id.in_(sorted(correlation_ids))))]
