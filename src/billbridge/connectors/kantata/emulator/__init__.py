"""Kantata OX's API v1 served on 127.0.0.1, for tests and fault injection."""

from billbridge.connectors.kantata.emulator.server import KantataEmulator

__all__ = ["KantataEmulator"]
