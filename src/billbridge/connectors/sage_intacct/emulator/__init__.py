"""The Sage Intacct emulator (``billbridge emulator run sage-intacct``)."""

from billbridge.connectors.sage_intacct.emulator.server import IntacctEmulator

__all__ = ["IntacctEmulator"]
