"""The Oracle Fusion Cloud ERP emulator (``billbridge emulator run oracle-fusion``)."""

from billbridge.connectors.oracle_fusion.emulator.server import OracleEmulator

__all__ = ["OracleEmulator"]
