"""Replicon's service API served on 127.0.0.1, for tests, the demo and fault injection."""

from billbridge.connectors.replicon.emulator.server import RepliconEmulator
from billbridge.connectors.replicon.emulator.tenant import Sheet, Tenant

__all__ = ["RepliconEmulator", "Sheet", "Tenant"]
