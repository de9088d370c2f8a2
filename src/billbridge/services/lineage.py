"""Lineage: the whole chain behind any source event, record, command or
target posting id."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection

from billbridge.engine import lineage
from billbridge.engine.lineage import Lineage
from billbridge.errors import NotFound


def trace(conn: Connection, ident: str) -> Lineage:
    """The chain of ``ident``; NotFound when nothing is known by it."""
    found = lineage.trace(conn, ident)
    if not found.found:
        raise NotFound(f"nothing is known by {ident!r}")
    return found


def as_json(found: Lineage) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(found.__dict__, default=str))
    return loaded
