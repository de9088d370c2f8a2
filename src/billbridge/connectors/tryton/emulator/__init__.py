"""No Tryton emulator: a proxy in front of the real ``trytond`` that injects
faults per RPC method; ``launcher.py`` starts that ``trytond`` (and
``setup.py`` sets its firm up) for the tests and the demo."""

from billbridge.connectors.tryton.emulator.server import TrytonFaultProxy

__all__ = ["TrytonFaultProxy"]
