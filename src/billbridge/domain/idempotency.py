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
    return key_of_json(target, kind, origin, canonical_json(content))


def key_of_json(target: str, kind: str, origin: str, content_json: str) -> str:
    """The same key from the content's canonical JSON, for a caller that has it
    already (the outbox stores it): the material is the canonical JSON of
    ``[target, kind, origin, content]``, spelt out."""
    material = f"[{canonical_json(target)},{canonical_json(kind)},{canonical_json(origin)}," \
               f"{content_json}]"
    return hashlib.sha256(material.encode()).hexdigest()[:KEY_LENGTH]
