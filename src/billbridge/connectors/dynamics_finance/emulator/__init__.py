"""The Dynamics 365 Finance emulator (``billbridge emulator run dynamics-finance``)."""

from billbridge.connectors.dynamics_finance.emulator.server import DATA, FinanceEmulator

__all__ = ["DATA", "FinanceEmulator"]
