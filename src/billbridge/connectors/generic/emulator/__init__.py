"""The generic ledger (an ERP-like target) and time source, served on 127.0.0.1."""

from billbridge.connectors.generic.emulator.server import LedgerEmulator, TimeSourceEmulator

__all__ = ["LedgerEmulator", "TimeSourceEmulator"]
