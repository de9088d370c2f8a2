"""Rows as JSON-ready dicts: dates, Decimals and the like as the strings the
API and the CLI have always printed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def plain(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """SQLAlchemy rows (or dicts) as JSON values."""
    items = [dict(r._mapping) if hasattr(r, "_mapping") else dict(r) for r in rows]
    loaded: list[dict[str, Any]] = json.loads(json.dumps(items, default=str))
    return loaded
