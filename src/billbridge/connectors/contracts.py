"""Vendor contracts: the fields a connector reads per record type (name, type,
required) and the API version it speaks, and the pure check of one record
against them. Drift (a field the contract does not know, an optional field
missing, a type changed, a required field missing) is reported to an
observer the engine wires, never raised: the read goes on, and a record that
no longer maps is the mapping's ``Malformed`` as before, with its drift named."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, time
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from billbridge.connectors.base import Malformed

R = TypeVar("R", bound=Mapping[str, Any])
T = TypeVar("T")


class FieldType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"


class DriftKind(StrEnum):
    UNKNOWN_FIELD = "unknown_field"
    MISSING_OPTIONAL = "missing_optional"
    MISSING_REQUIRED = "missing_required"
    TYPE_CHANGED = "type_changed"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    type: FieldType
    required: bool = False


def required(kind: FieldType) -> FieldSpec:
    return FieldSpec(kind, True)


def optional(kind: FieldType) -> FieldSpec:
    return FieldSpec(kind, False)


def fields_table(table: str) -> dict[str, dict[str, FieldSpec]]:
    """Record type → field → spec from a table: a line at the margin names one or
    more record types, each indented line under it a type (``string``,
    ``number``, ``boolean``, ``object``, ``array``) and the fields of that type,
    a required one marked ``!``. A record type named again gathers more fields,
    so fields several types share are declared once under all their names::

        time_entry expense
          number  id! total_cost
          string  updated_at! notes
    """
    records: dict[str, dict[str, FieldSpec]] = {}
    current: list[str] = []
    for number, line in enumerate(table.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if not line[0].isspace():
            current = words
            for name in words:
                records.setdefault(name, {})
            continue
        if words[0] not in FieldType.__members__.values() or not current:
            raise ValueError(f"contract table line {number}: {line.strip()!r} is not a type "
                             f"({', '.join(FieldType)}) and its fields under a record type")
        for word in words[1:]:
            for record in current:
                records[record][word.rstrip("!")] = FieldSpec(FieldType(words[0]),
                                                              word.endswith("!"))
    return records


@dataclass(frozen=True, slots=True)
class Contract:
    """What one vendor's connector reads: ``records[type][field]`` (nested
    fields spelled with dots, ``Account.Name``), the API version it speaks,
    and the names whose contents are the vendor's own metadata (``attributes``),
    never checked."""

    vendor: str
    api_version: str
    records: Mapping[str, Mapping[str, FieldSpec]]
    ignored: frozenset[str] = frozenset()
    omits_empty: bool = False
    """The vendor leaves an empty field out (QuickBooks): a missing optional
    field is then no drift."""

    def at_version(self, api_version: str) -> Contract:
        return replace(self, api_version=api_version)

    def as_text(self) -> Contract:
        """The contract of records whose values all arrive as text (XML
        payloads): each field a string, required as before."""
        return replace(self, records={
            kind: {name: FieldSpec(FieldType.STRING, spec.required)
                   for name, spec in fields.items()}
            for kind, fields in self.records.items()})

    def accepting(self, baseline: Mapping[str, Mapping[str, str]]) -> Contract:
        """The contract with a reviewed baseline (record type → field → type, as
        ``shape_of`` gives) accepted: a field it holds is known, with the type
        it was recorded with; what the contract requires stays required."""
        records = {}
        for record_type, fields in self.records.items():
            merged = dict(fields)
            for name, kind in (baseline.get(record_type) or {}).items():
                if kind in FieldType.__members__.values():
                    old = fields.get(name)
                    merged[name] = FieldSpec(FieldType(kind), old.required if old else False)
            records[record_type] = merged
        return replace(self, records=records)


def declare(vendor: str, api_version: str, table: str, *,
            ignored: Iterable[str] = (), omits_empty: bool = False) -> Contract:
    """A contract from a table of fields (``fields_table``)."""
    return Contract(vendor, api_version, fields_table(table), frozenset(ignored), omits_empty)


@dataclass(frozen=True, slots=True)
class Finding:
    field: str
    kind: DriftKind
    expected: str
    seen: str


@dataclass(frozen=True, slots=True)
class Drift:
    """A record's departures from its contract; ``sample`` is the record as read."""

    record_type: str
    findings: tuple[Finding, ...]
    sample: Mapping[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.findings)

    def describe(self) -> str:
        """One line naming each finding: ``required field X missing; ...``."""
        words = {DriftKind.UNKNOWN_FIELD: "new field {f} ({seen})",
                 DriftKind.MISSING_OPTIONAL: "optional field {f} missing",
                 DriftKind.MISSING_REQUIRED: "required field {f} missing",
                 DriftKind.TYPE_CHANGED: "field {f} is {seen}, the contract says {expected}"}
        first = sorted(self.findings, key=lambda x: x.kind is not DriftKind.MISSING_REQUIRED)
        return "; ".join(words[x.kind].format(f=x.field, seen=x.seen, expected=x.expected)
                         for x in first)


def type_of(value: Any) -> str:
    """The contract type of a value as the client decoded it: a ``Decimal``
    (JSON read with exact fractions) is a number, a date or time (Tryton's
    JSON-RPC objects) a string, as the wire's text for it would be."""
    if isinstance(value, bool):
        return FieldType.BOOLEAN.value
    if isinstance(value, (int, float, Decimal)):
        return FieldType.NUMBER.value
    if isinstance(value, (str, date, time)):
        return FieldType.STRING.value
    if isinstance(value, Mapping):
        return FieldType.OBJECT.value
    if isinstance(value, (list, tuple)):
        return FieldType.ARRAY.value
    return "null"


def _flatten(record: Mapping[str, Any], fields: Mapping[str, FieldSpec],
             ignored: frozenset[str], prefix: str = "") -> dict[str, Any]:
    """Dotted name → value; a nested mapping is walked unless the contract
    declares it an object (read whole) or ignores it."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if key in ignored or name in ignored:
            continue
        spec = fields.get(name)
        if isinstance(value, Mapping) and (spec is None or spec.type is not FieldType.OBJECT):
            if spec is None and not any(f.startswith(name + ".") for f in fields):
                out[name] = value
                continue
            out.update(_flatten(value, fields, ignored, name + "."))
            continue
        out[name] = value
    return out


def check(contract: Contract, record_type: str, record: Mapping[str, Any]) -> Drift:
    """``record`` against the contract's ``record_type``. A null value is a
    field present without a value (vendors send empty fields as null): it is
    drift only when the field is required. A record type the contract does
    not declare is not checked."""
    fields = contract.records.get(record_type)
    if fields is None:
        return Drift(record_type, ())
    seen = _flatten(record, fields, contract.ignored)
    findings: list[Finding] = []
    for name, spec in fields.items():
        if name not in seen or (seen[name] is None and spec.required):
            if contract.omits_empty and not spec.required:
                continue
            kind = DriftKind.MISSING_REQUIRED if spec.required else DriftKind.MISSING_OPTIONAL
            parent = name.rpartition(".")[0]
            if parent and parent in seen and seen[parent] is None:
                continue  # the relation itself is empty: its fields are not drift
            findings.append(Finding(name, kind, spec.type.value, "absent"))
            continue
        actual = type_of(seen[name])
        if actual != "null" and actual != spec.type.value:
            findings.append(Finding(name, DriftKind.TYPE_CHANGED, spec.type.value, actual))
    for name in sorted(set(seen) - set(fields)):
        if not any(f.startswith(name + ".") for f in fields):
            findings.append(Finding(name, DriftKind.UNKNOWN_FIELD, "", type_of(seen[name])))
    return Drift(record_type, tuple(findings), dict(record) if findings else {})


def shape_of(contract: Contract, record_type: str,
             records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Field → type of the values ``records`` hold (a null says nothing), walked
    as ``check`` walks them: what ``contracts record`` keeps as a baseline."""
    fields = contract.records.get(record_type, {})
    shape: dict[str, str] = {}
    for record in records:
        for name, value in _flatten(record, fields, contract.ignored).items():
            if value is not None:
                shape[name] = type_of(value)
    return dict(sorted(shape.items()))


DriftObserver = Callable[[Drift], None]
"""Where a connector reports drift: the engine counts and keeps it."""


class ContractWatch:
    """A source's hold on its contract: checks each record it reads and tells
    the observer (none until the engine wires one) about any drift."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.observer: DriftObserver | None = None
        self.reads = 0  # records checked, for a sample that stops after enough
        self.listener: Callable[[str, Mapping[str, Any]], None] | None = None

    def read(self, record_type: str, record: Mapping[str, Any]) -> Drift:
        self.reads += 1
        if self.listener is not None:
            self.listener(record_type, record)
        drift = check(self.contract, record_type, record)
        if drift and self.observer is not None:
            self.observer(drift)
        return drift

    def read_all(self, record_type: str, records: Iterable[Mapping[str, Any]]) -> list[Drift]:
        return [self.read(record_type, r) for r in records]

    def read_rows(self, record_type: str, rows: list[R]) -> list[R]:
        """``rows``, each checked: for a read whose rows are used as they come."""
        for row in rows:
            self.read(record_type, row)
        return rows


def name_drift(item: T, drift: Drift) -> T:
    """A ``Malformed`` whose record drifted, with the drift named in its reason."""
    if isinstance(item, Malformed) and drift:
        named: T = replace(item, reason=f"{item.reason} (vendor drift: {drift.describe()})")
        return named
    return item
