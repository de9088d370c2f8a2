"""Query and path values as the API accepts them: whole numbers written as
JSON writes numbers (what OpenAPI's ``integer`` means: ``42``, ``42.0``,
``4.2e1``) within their column's range, dates written YYYY-MM-DD, names and
ids without control characters. Pydantic's lax parsing alone would read
``cursor=+0.0`` or `` 7`` as numbers and ``period_end=0`` as 1970-01-01."""

from __future__ import annotations

import re
from decimal import Decimal

MAX_ID = 2**63 - 1
MAX_VERSION = 2**31 - 1
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
"""Any text but control characters (PostgreSQL refuses NUL in text)."""
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def whole_number(value: object) -> object:
    """A pydantic before-validator: a whole number as written in a URL."""
    if not isinstance(value, str):
        return value
    if not _JSON_NUMBER.fullmatch(value):
        raise ValueError("must be a whole number written in digits, like 42")
    number = Decimal(value)
    if number.adjusted() > 30:  # far past any bound, and int() of it could be huge
        raise ValueError("is far too large")
    if number != number.to_integral_value():
        raise ValueError("must be a whole number, like 42")
    return int(number)


def iso_date(value: object) -> object:
    """A pydantic before-validator: a date as written in a URL."""
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD, like 2025-01-31")
    return value
