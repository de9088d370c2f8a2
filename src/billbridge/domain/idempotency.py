"""The one idempotency-key function: derived from a command's origin and
content, never random, so a retry, a replay or a second worker produces the
same key and the target can recognise the repeat."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

KEY_LENGTH = 32
"""Hex characters: 128 bits, short enough for QuickBooks' 36-character batch
request ids and Xero's 128-character Idempotency-Key."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def idempotency_key(target: str, kind: str, origin: str, content: Mapping[str, Any]) -> str:
    """Key for one outbound command.

    ``origin`` names what caused the command (for example the canonical record
    and version it posts); ``content`` is what is sent. The same origin with the
    same content always yields the same key; new content (a re-priced charge)
    yields a new one.
    """
    material = canonical_json([target, kind, origin, content])
    return hashlib.sha256(material.encode()).hexdigest()[:KEY_LENGTH]
