"""Vendor contracts: the drift the hub has seen per connection, record type,
field and kind (first and last seen, how often, a sample), for the console
page; a check of a small sample read from a vendor now; and a reviewed sample
recorded as the connection's new baseline (audited)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from billbridge.connectors.base import Source
from billbridge.connectors.contracts import Drift, shape_of
from billbridge.domain.config import Configuration
from billbridge.engine import drift
from billbridge.engine.sync import configured
from billbridge.errors import Invalid
from billbridge.services._rows import plain


def drift_seen(conn: Connection, connection: str | None = None) -> list[dict[str, Any]]:
    """Every drift kept, newest last seen first."""
    return plain(drift.rows(conn, connection))


@dataclass
class CheckReport:
    """What a sample read from a vendor showed against its connector's contract."""

    connection: str
    api_version: str
    records: int
    findings: list[dict[str, Any]] = field(default_factory=list)
    shape: dict[str, dict[str, str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"connection": self.connection, "api_version": self.api_version,
                "records": self.records, "findings": self.findings, "shape": self.shape}


def check(engine: Engine, source: Source, *, sample: int = 50,
          api_version: str | None = None) -> CheckReport:
    """Read about ``sample`` records (whole pages) from the vendor from the
    beginning, checked against the contract as the poll would check them (the
    pinned version, the recorded baseline), or at ``api_version`` (what a
    version not yet proposed would answer); nothing is stored."""
    contracts = getattr(source, "contracts", None)
    if contracts is None:
        raise Invalid(f"{source.name}: its connector declares no contract yet "
                      "(connectors/<vendor>/contract.py)")
    with engine.connect() as conn:
        configured(conn, source)  # pins the version, accepts the baseline
    if api_version is not None:
        configure = getattr(source, "configure", None)
        if configure is None:
            raise Invalid(f"{source.name}: its connector speaks one API version only")
        configure(Configuration(api_versions={source.name: api_version}))
    seen: list[Drift] = []
    records: dict[str, list[Mapping[str, Any]]] = {}
    contracts.observer = seen.append
    contracts.listener = lambda kind, record: records.setdefault(kind, []).append(record)
    for _page in source.poll(None):
        if contracts.reads >= sample:
            break
    tally = Counter((d.record_type, f.field, f.kind.value, f.expected, f.seen)
                    for d in seen for f in d.findings)
    findings = [{"record_type": t, "field": n, "kind": k, "expected": e, "seen": s,
                 "count": c} for (t, n, k, e, s), c in sorted(tally.items())]
    shape = {kind: shape_of(contracts.contract, kind, rows) for kind, rows in records.items()}
    return CheckReport(source.name, contracts.contract.api_version, contracts.reads, findings,
                       shape)


def record(engine: Engine, source: Source, *, actor: str, at: datetime,
           sample: int = 50) -> CheckReport:
    """Read a sample and keep its shape as the connection's baseline, after a
    person reviewed the drift: the fields it holds are known from now on and
    the drift kept for the connection is cleared (the audit log keeps who and
    when)."""
    report = check(engine, source, sample=sample)
    if not report.records:
        raise Invalid(f"{source.name}: the vendor returned no records to record a baseline "
                      "from; record one once it has some")
    with engine.begin() as conn:
        drift.record_baseline(conn, report.connection, report.api_version, report.shape,
                              actor=actor, at=at)
    return report
