"""Emulated vendor systems: a small HTTP server base with fault injection that
every vendor emulator reuses (timeouts, 5xx, 429, lost acknowledgements)."""

from billbridge.emulation.faults import Fault, FaultInjector, FaultRule
from billbridge.emulation.server import EmulatorServer, Request, Response

__all__ = ["EmulatorServer", "Fault", "FaultInjector", "FaultRule", "Request", "Response"]
