"""Tempo's REST API v4 (and the Jira issues it names) served on 127.0.0.1,
for tests, the demo and fault injection."""

from billbridge.connectors.tempo.emulator.server import TempoEmulator, period_of

__all__ = ["TempoEmulator", "period_of"]
