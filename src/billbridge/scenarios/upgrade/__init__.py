"""An API version upgrade, previewed: when a proposal moves a connection to
another API version (``api_versions``), the scenario events that connection's
connector reads are put into that vendor's emulator and read back by the real
connector, once in the active version's shape and once in the proposed one's,
so `config diff` and the configuration preview show the postings that would
change. An event that no longer maps is the scenario's malformed event (an
exception, its work parked). Each vendor's part is a ``VendorPreview``
(``reading``): Salesforce reads won deals, QuickBooks invoice states."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billbridge.scenarios.upgrade import quickbooks, salesforce
from billbridge.scenarios.upgrade.reading import Event, VendorPreview

PREVIEWS: dict[str, VendorPreview] = {"salesforce": salesforce.PREVIEW,
                                      "quickbooks": quickbooks.PREVIEW}
"""Connection → its vendor's preview (a connection is named after its vendor)."""


def changed_versions(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Connection → (active version, proposed version) for each connection a
    proposal moves, of the vendors an upgrade can be previewed for."""
    before, after = old.get("api_versions") or {}, new.get("api_versions") or {}
    changed = {}
    for name in sorted(set(before) | set(after)):
        if name in PREVIEWS and before.get(name) != after.get(name):
            preview = PREVIEWS[name]
            pair = (str(before.get(name) or preview.default_version),
                    str(after.get(name) or preview.default_version))
            if preview.check is not None:
                for version in pair:
                    preview.check(version)
            changed[name] = pair
    return changed


def read_through(events: list[Event], versions: Mapping[str, str]) -> list[Event]:
    """``events`` as each named connection's connector reads them at its version."""
    for name, version in versions.items():
        events = PREVIEWS[name].read_through(events, version)
    return events
