"""Query and path values as the API accepts them: whole numbers written in
decimal digits and within their column's range, dates written YYYY-MM-DD,
names and ids without control characters. Pydantic's lax parsing alone
would read ``cursor=+0.0`` as 0 and ``period_end=0`` as 1970-01-01."""

from __future__ import annotations

import re

MAX_ID = 2**63 - 1
MAX_VERSION = 2**31 - 1
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
"""Any text but control characters (PostgreSQL refuses NUL in text)."""
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def digits(value: object) -> object:
    """A pydantic before-validator: a whole number as written in a URL."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written in digits, like 42")
    return value


def iso_date(value: object) -> object:
    """A pydantic before-validator: a date as written in a URL."""
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD, like 2025-01-31")
    return value
