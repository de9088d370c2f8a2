"""The list services' ``GetData`` as the emulator answers it: a filter
expression tree (``leftExpression``/``operatorUri``/``rightExpression``, a
``filterDefinitionUri`` on the left of a comparison, a ``value`` on its
right), ``sort`` by column, ``page``/``pagesize``, and the documented answer
``{"header": [{displayName, uri}], "rows": [{"cells": [{dataType,
objectType, slug, textValue, uri}]}]}``, one cell per column asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billbridge.connectors.replicon.emulator.tenant import Sheet, Tenant, iso_ms

Cell = Callable[[Tenant, Sheet], dict[str, Any]]
Value = Callable[[Sheet], Any]
OBJECT, TEXT, DATE_TIME = ("urn:replicon:list-type:object", "urn:replicon:list-type:text",
                           "urn:replicon:list-type:date-time")


@dataclass(frozen=True)
class ListDef:
    object_type: str
    columns: Mapping[str, tuple[str, Cell, Value]]  # uri → (display name, cell, sort key)
    filters: Mapping[str, Value]  # filter definition uri → the sheet's value


def _cell(data_type: str, *, uri: Any = None, text: Any = None, slug: Any = None,
          object_type: str | None = None) -> dict[str, Any]:
    return {"dataType": data_type, "objectType": object_type, "slug": slug,
            "textValue": text, "uri": uri}


def _sheet_list(kind: str, object_type: str) -> ListDef:
    column = f"urn:replicon:{kind}-list-column:"
    filters = f"urn:replicon:{kind}-list-filter:"
    owner_column = "timesheet-owner" if kind == "timesheet" else "owner"
    return ListDef(object_type, {
        f"{column}{kind}": (kind.replace("-", " ").title(), lambda t, s: _cell(
            OBJECT, uri=s.uri, slug=s.uri.rsplit(":", 1)[-1], object_type=object_type,
            text=f"{t.user_ref(s.owner)['displayText']} {s.start:%b %d, %Y}"), lambda s: s.uri),
        f"{column}{owner_column}": ("Owner", lambda t, s: _cell(
            OBJECT, uri=s.owner, text=t.user_ref(s.owner)["displayText"],
            slug=t.user_ref(s.owner)["slug"], object_type="urn:replicon:object-type:user"),
            lambda s: s.owner),
        f"{column}approval-status": ("Approval Status", lambda t, s: _cell(
            OBJECT, uri=s.status, text=t.status_ref(s.status)["displayText"]),
            lambda s: s.status),
        f"{column}last-modified-date-time": ("Last Modified", lambda t, s: _cell(
            DATE_TIME, text=iso_ms(s.modified)), lambda s: s.modified),
    }, {f"{filters}last-modified-date-time": lambda s: s.modified,
        f"{filters}approval-status": lambda s: s.status,
        f"{filters}{owner_column}": lambda s: s.owner})


LISTS = {"timesheets": _sheet_list("timesheet", "urn:replicon:object-type:timesheet"),
         "expense_sheets": _sheet_list("expense-sheet", "urn:replicon:object-type:expense-sheet")}


def _operand(value: Any) -> Any:
    """A filter value: ``{"dateTimeUtc": {...}}`` as milliseconds, ``{"uri"}``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"a filter value must be an object, got {value!r}")
    when = value.get("dateTimeUtc")
    if isinstance(when, Mapping):
        moment = datetime(int(when["year"]), int(when["month"]), int(when["day"]),
                          int(when.get("hour") or 0), int(when.get("minute") or 0),
                          int(when.get("second") or 0),
                          int(when.get("millisecond") or 0) * 1000, tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if value.get("uri") is not None:
        return value["uri"]
    raise ValueError(f"an unsupported filter value: {value!r}")


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "urn:replicon:filter-operator:equal": lambda a, b: a == b,
    "urn:replicon:filter-operator:not-equal": lambda a, b: a != b,
    "urn:replicon:filter-operator:greater-than-or-equal": lambda a, b: a >= b,
    "urn:replicon:filter-operator:greater-than": lambda a, b: a > b,
    "urn:replicon:filter-operator:less-than-or-equal": lambda a, b: a <= b,
    "urn:replicon:filter-operator:less-than": lambda a, b: a < b,
}


def _matcher(definition: ListDef, expression: Any) -> Callable[[Sheet], bool]:
    if not expression:
        return lambda _s: True
    operator = expression.get("operatorUri")
    if operator in ("urn:replicon:filter-operator:and", "urn:replicon:filter-operator:or"):
        left = _matcher(definition, expression.get("leftExpression"))
        right = _matcher(definition, expression.get("rightExpression"))
        if operator.endswith(":and"):
            return lambda s: left(s) and right(s)
        return lambda s: left(s) or right(s)
    uri = str((expression.get("leftExpression") or {}).get("filterDefinitionUri"))
    if uri not in definition.filters:
        raise ValueError(f"unknown filterDefinitionUri {uri!r}")
    if operator not in COMPARE:
        raise ValueError(f"unsupported operatorUri {operator!r}")
    wanted = _operand((expression.get("rightExpression") or {}).get("value"))
    read, compare = definition.filters[uri], COMPARE[operator]
    return lambda s: compare(read(s), wanted)


def get_data(definition: ListDef, tenant: Tenant, sheets: Sequence[Sheet],
             body: Mapping[str, Any], *, ignore_page: bool = False) -> dict[str, Any]:
    """``GetData``'s ``d`` for ``body``; a ``ValueError`` names what it cannot read."""
    columns = [str(c) for c in body.get("columnUris") or []]
    unknown = [c for c in columns if c not in definition.columns]
    if not columns or unknown:
        raise ValueError(f"unknown or missing columnUris: {unknown or columns}")
    page, size = int(body.get("page") or 1), int(body.get("pagesize") or 100)
    if page < 1 or size < 1:
        raise ValueError("page and pagesize must be at least 1")
    found = [s for s in sheets if _matcher(definition, body.get("filterExpression"))(s)]
    for order in reversed(body.get("sort") or []):
        column = definition.columns.get(str(order.get("columnUri")))
        if column is None:
            raise ValueError(f"cannot sort by {order.get('columnUri')!r}")
        found.sort(key=column[2], reverse=not order.get("isAscending", True))
    start = 0 if ignore_page else (page - 1) * size
    rows = found[start:start + size]
    return {"header": [{"uri": c, "displayName": definition.columns[c][0]} for c in columns],
            "rows": [{"cells": [definition.columns[c][1](tenant, s) for c in columns]}
                     for s in rows]}
