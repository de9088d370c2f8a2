"""A real Tryton server for tests: the product's own launcher
(``billbridge.connectors.tryton.emulator.launcher``), with the template kept in
the machine's test cache (``cache_directory``) so that the next session and a
fresh clone on the same machine reuse it."""

from __future__ import annotations

import os
from pathlib import Path

from billbridge.connectors.tryton.emulator.launcher import (
    DATABASE,
    PASSWORD,
    Template,
    TrytonServer,
    build_template,
    template_key,
)

__all__ = ["DATABASE", "PASSWORD", "Template", "TrytonServer", "build_template",
           "cache_directory", "template_key"]


def cache_directory() -> Path:
    """Where built templates are kept: ``BILLBRIDGE_TEST_CACHE``, else the
    user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``) under billbridge/."""
    if configured := os.environ.get("BILLBRIDGE_TEST_CACHE"):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "billbridge" / "tests"
