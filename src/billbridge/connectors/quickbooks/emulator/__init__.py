"""QuickBooks Online served on 127.0.0.1: the HTTP side (``server.py``), the
company file and QuickBooks' rules (``company.py``), the query language
(``query.py``)."""

from billbridge.connectors.quickbooks.emulator.server import DISCOVERY_PATH, QuickBooksEmulator

__all__ = ["DISCOVERY_PATH", "QuickBooksEmulator"]
