"""NetSuite's REST record service and SuiteQL (``suiteql.py``) served on 127.0.0.1,
for tests and fault injection."""

from billbridge.connectors.netsuite.emulator.server import NetSuiteEmulator

__all__ = ["NetSuiteEmulator"]
