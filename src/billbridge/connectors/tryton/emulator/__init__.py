"""No Tryton emulator: a proxy in front of the real ``trytond`` that injects
faults per RPC method."""

from billbridge.connectors.tryton.emulator.server import TrytonFaultProxy

__all__ = ["TrytonFaultProxy"]
