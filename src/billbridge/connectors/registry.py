"""Connector registration: one line per vendor. The engine and the CLI find
targets and sources here and nowhere else."""

from __future__ import annotations

import os
from collections.abc import Callable

from billbridge.connectors.base import IdempotencyMode, Source, Target


def _ledger(name: str, url: str) -> Target:
    from billbridge.connectors.generic.client import LedgerTarget

    mode = IdempotencyMode(os.environ.get("BILLBRIDGE_LEDGER_IDEMPOTENCY", "native"))
    token = os.environ.get("BILLBRIDGE_LEDGER_TOKEN", "ledger-token")
    return LedgerTarget(url, token, name=name, idempotency=mode)


def _generic_source(name: str, url: str) -> Source:
    from billbridge.connectors.generic.source import GenericTimeSource

    return GenericTimeSource(url, name=name)


TARGETS: dict[str, Callable[[str, str], Target]] = {
    "ledger": _ledger,
}
SOURCES: dict[str, Callable[[str, str], Source]] = {
    "generic": _generic_source,
}


def parse_spec(spec: str) -> tuple[str, str, str]:
    """``NAME=URL`` or ``NAME=KIND+URL`` → (name, kind, url)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"expected NAME=URL or NAME=KIND+URL, got {spec!r}")
    kind, plus, url = rest.partition("+")
    if not plus:
        kind, url = name, rest
    return name, kind, url


def build_target(spec: str) -> Target:
    name, kind, url = parse_spec(spec)
    if kind not in TARGETS:
        raise ValueError(f"unknown target kind {kind!r}; known: {', '.join(sorted(TARGETS))}")
    return TARGETS[kind](name, url)


def build_source(spec: str) -> Source:
    name, kind, url = parse_spec(spec)
    if kind not in SOURCES:
        raise ValueError(f"unknown source kind {kind!r}; known: {', '.join(sorted(SOURCES))}")
    return SOURCES[kind](name, url)
