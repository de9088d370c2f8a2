"""A Salesforce org served on 127.0.0.1 (TLS), for tests and fault injection."""

from billbridge.connectors.salesforce.emulator.server import SalesforceEmulator

__all__ = ["SalesforceEmulator"]
