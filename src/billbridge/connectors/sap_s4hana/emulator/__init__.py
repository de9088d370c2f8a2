"""The SAP S/4HANA Cloud emulator (``billbridge emulator run sap-s4hana``)."""

from billbridge.connectors.sap_s4hana.emulator.server import ROOT, SapEmulator

__all__ = ["ROOT", "SapEmulator"]
