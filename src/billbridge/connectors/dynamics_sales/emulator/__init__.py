"""A Dynamics 365 Sales (Dataverse Web API v9.2) environment served on
127.0.0.1, for tests, the demo and fault injection."""

from billbridge.connectors.dynamics_sales.emulator.server import API, DataverseEmulator

__all__ = ["API", "DataverseEmulator"]
