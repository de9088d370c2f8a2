"""Small helpers every vendor mapping needs: blank values, ISO instants,
country names to ISO codes, vendor numbers as ``Decimal``, mapping options given as JSON text,
validation errors as one readable line, and ``MappingError`` for a command a
vendor cannot be given."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ValidationError

from billbridge.connectors.base import OutboundCommand, RecordResult, ResultStatus
from billbridge.domain.events import explain as _explain
from billbridge.domain.records import Customer, Invoice

M = TypeVar("M", bound=BaseModel)
MARKER = re.compile(r"\[bb:([0-9a-f]+)\]")
"""A command's marker in a record's free text: ``[bb:<idempotency key>]``."""
R = TypeVar("R")

COUNTRY_NAMES: dict[str, str] = {
    "united states": "US", "united states of america": "US", "usa": "US",
    "united kingdom": "GB", "uk": "GB", "great britain": "GB", "england": "GB",
    "germany": "DE", "deutschland": "DE", "france": "FR", "ireland": "IE",
    "netherlands": "NL", "spain": "ES", "italy": "IT", "canada": "CA", "australia": "AU",
    "japan": "JP", "switzerland": "CH", "sweden": "SE", "belgium": "BE",
}


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def country_code(value: Any) -> str | None:
    """ISO 3166 alpha-2 from a code or a common English name; anything else is
    returned as given, for validation to name."""
    if blank(value):
        return None
    text = str(value).strip()
    if len(text) == 2 and text.isalpha():
        return text.upper()
    return COUNTRY_NAMES.get(text.lower(), text)


def explain(error: ValidationError) -> str:
    return _explain(error, "record")


class MappingError(ValueError):
    """A command the vendor cannot be given as it is; ``code`` is the reason
    an operator sees on the rejected record."""

    def __init__(self, message: str, *, code: str = "MAPPING") -> None:
        super().__init__(message)
        self.code = code


def marker(idempotency_key: str) -> str:
    """Written into a record's free text (a memo, a description, a journal
    line's text) so that a resend can find the record by its command's key."""
    return f"[bb:{idempotency_key}]"


def command_record(model: type[M], payload: Mapping[str, Any], kind: str) -> M:
    """A command's payload as the canonical record it carries, or a
    ``MappingError`` naming the command and what is wrong with it."""
    try:
        return model.model_validate(dict(payload))
    except ValidationError as exc:
        raise MappingError(f"{kind}: {explain(exc)}") from None


def invoice_record(payload: Mapping[str, Any]) -> Invoice:
    """An ``invoice.create`` payload as its invoice, which must have lines."""
    bill = command_record(Invoice, payload, "invoice.create")
    if not bill.lines:
        raise MappingError(f"invoice {bill.id} has no lines")
    return bill


def mapped_tax(tax_code: str | None, table: Mapping[str, str], *, vendor_code: str,
               option: str) -> str | None:
    """The vendor's code for a canonical tax code from the connection's
    ``option`` map (None: no tax code, the vendor's default); ``MappingError``
    UNMAPPED_TAX_CODE naming the map and what it holds when it has none."""
    if tax_code is None:
        return None
    if tax_code not in table:
        known = ", ".join(sorted(table)) or "none"
        raise MappingError(f"tax code {tax_code!r} has no {vendor_code} in the connection's "
                           f"{option} map (mapped codes: {known}); add it and retry",
                           code="UNMAPPED_TAX_CODE")
    return table[tax_code]


def named(command: OutboundCommand, kind: str) -> str:
    """The canonical id of the ``kind`` (e.g. ``customer``) the command's
    payload names, or a ``MappingError`` saying it names none."""
    value = command.payload.get(kind)
    if not value:
        raise MappingError(f"{command.kind.partition('.')[0]} {command.payload.get('id')} "
                           f"names no {kind}")
    return str(value)


def required_ref(command: OutboundCommand, kind: str, *, record: str, code: str) -> str:
    """The vendor's id, as the command's refs give it, of the ``kind`` its
    payload names (an invoice's customer); a ``MappingError`` ``code`` when
    the vendor holds no ``record`` for it yet (the hub sends it first)."""
    value = command.payload.get(kind)
    ref = command.ref(kind, value) if value else None
    if not ref:
        raise MappingError(f"{command.kind.partition('.')[0]} {command.payload.get('id')}: "
                           f"{kind} {value} has no {record} yet", code=code)
    return ref


def posting_to_reverse(command: OutboundCommand, originals: Mapping[str, R], *, what: str,
                       vendor: str) -> R:
    """The ERP's record of the posting a reversal undoes, found by the id the
    dispatcher names in the command's refs; ``MappingError`` NOTHING_TO_REVERSE
    when the ERP holds none. ``what`` is the record in the vendor's words."""
    charge = command.payload.get("charge")
    original = originals.get(command.ref("time_charge", charge) or "")
    if original is None:
        raise MappingError(f"charge {charge} has no {vendor} {what} to reverse (it was never "
                           f"posted, or its {what} was deleted in {vendor})",
                           code="NOTHING_TO_REVERSE")
    return original


def decimal_of(value: Any, what: str) -> Decimal:
    """A vendor number as Decimal, through ``str`` (never float arithmetic)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{what} is {value!r}, not a number")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what} is {value!r}, not a number") from None


def instant(value: Any) -> datetime | None:
    """An ISO 8601 date-time (``…Z`` or an offset) as an aware UTC datetime;
    None when blank or not one. A stamp without an offset is taken as UTC."""
    if blank(value):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def option_mapping(value: Any, name: str) -> dict[str, str]:
    """A connection option that is a mapping, given as one or as JSON text
    (options from environment variables arrive as strings)."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"option {name} must be a JSON object, got {value!r}") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"option {name} must be a mapping, got {type(value).__name__}")
    return {str(k): str(v) for k, v in value.items()}


S = TypeVar("S")


def settings_from_options(cls: type[S], options: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of the settings dataclass ``cls`` that ``options`` gives,
    each read as its annotation says (``bool``, ``int``, a ``Mapping`` as
    ``option_mapping`` reads it, else text): for ``cls(**…)``."""
    given: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = options.get(spec.name)
        if value in (None, ""):
            continue
        kind = str(spec.type)
        if kind.startswith("Mapping"):
            given[spec.name] = option_mapping(value, spec.name)
        elif kind == "bool":
            given[spec.name] = str(value).strip().lower() in ("1", "true", "yes", "on")
        elif kind == "int":
            given[spec.name] = int(value)
        else:
            given[spec.name] = str(value)
    return given


class OptionSettings:
    """A base for a connection's settings dataclass whose every field a
    connection option may set (each optional; the vendor's page under
    docs/connectors lists them)."""

    __slots__ = ()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        return cls(**settings_from_options(cls, options))


Built = list[tuple[OutboundCommand, dict[str, Any]]]


def build_each(commands: Sequence[OutboundCommand],
               build: Callable[[OutboundCommand], dict[str, Any]],
               results: list[RecordResult]) -> Built:
    """Each command with what ``build`` makes of it; a command it cannot be
    made into (``MappingError``, ``ValueError``) is answered REJECTED with
    the reason, in ``results``."""
    built: Built = []
    for command in commands:
        try:
            built.append((command, build(command)))
        except (MappingError, ValueError) as exc:
            code = exc.code if isinstance(exc, MappingError) else "MAPPING"
            results.append(RecordResult.of(command, ResultStatus.REJECTED, code=code,
                                           message=str(exc)))
    return built


def customer_fields(record_id: str, *, name: Any, currency: Any, billing_country: Any,
                    tax_id: Any = None, legal_entity: Any = None) -> dict[str, Any] | str:
    """A canonical customer from a CRM's values, trimmed and validated, or
    what is wrong with it (for the vendor's mapping to prefix)."""
    record: dict[str, Any] = {
        "id": record_id,
        "name": str(name).strip(),
        "currency": str(currency).strip().upper(),
        "billing_country": country_code(billing_country),
    }
    if not blank(tax_id):
        record["tax_id"] = str(tax_id).strip()
    if not blank(legal_entity):
        record["legal_entity"] = str(legal_entity).strip()
    try:
        Customer.model_validate(record)
    except ValidationError as exc:
        return explain(exc)
    return record


def crm_customer(what: str, record_id: str, read: Callable[[str], Any], *, currency: Any,
                 legal_entity_hint: Any = None) -> dict[str, Any] | str:
    """The canonical customer of a CRM's record (``what`` it is: an account,
    a company) whose canonical fields ``read`` gives by name, or what is wrong
    with it, naming the record. Its own legal entity wins over the hint."""
    legal_entity = read("customer.legal_entity")
    record = customer_fields(
        record_id, name=read("customer.name"), currency=currency,
        billing_country=read("customer.billing_country"), tax_id=read("customer.tax_id"),
        legal_entity=legal_entity_hint if blank(legal_entity) else legal_entity)
    return f"{what} {record_id}: {record}" if isinstance(record, str) else record
