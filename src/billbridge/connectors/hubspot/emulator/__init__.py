"""HubSpot's CRM API served on 127.0.0.1, for tests, the demo and fault injection."""

from billbridge.connectors.hubspot.emulator.server import HubSpotEmulator

__all__ = ["HubSpotEmulator"]
