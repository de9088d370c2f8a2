"""Harvest's API v2 served on 127.0.0.1, for tests, the demo and fault injection."""

from billbridge.connectors.harvest.emulator.server import HarvestEmulator

__all__ = ["HarvestEmulator"]
