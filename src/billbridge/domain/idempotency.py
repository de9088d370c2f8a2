"""The one idempotency-key function: derived from a command's origin and
content, never random, so a retry, a replay or a second worker produces the
same key and the target can recognise the repeat."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import orjson

KEY_LENGTH = 32
"""Hex characters: 128 bits, short enough for QuickBooks' 36-character batch
request ids and Xero's 128-character Idempotency-Key."""


def canonical_json(value: Any) -> str:
    """Sorted, compact, ASCII JSON: the bytes every key is made from, which
    must never change (tests/unit/test_idempotency_key_corpus.py pins them).
    orjson writes the common case (strings, whole numbers, booleans, nulls,
    in dicts and lists) a tenth as dearly; whatever it might spell
    differently from the stdlib (a float, a value only ``default=str``
    turns into JSON, a character the stdlib escapes) is written by the stdlib."""
    if _plain(value):
        try:
            fast = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # an integer past 64 bits, a lone surrogate
            pass
        else:
            if fast.isascii() and b"\x7f" not in fast:  # the stdlib escapes DEL
                return fast.decode()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


_PLAIN = frozenset({str, int, bool, type(None)})


def _plain(value: Any) -> bool:
    """Only what orjson and the stdlib spell alike: exact str, int, bool and
    None, in dicts with str keys and in lists."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list:
        return all(_plain(v) for v in value)
    return False


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
