"""Xero's Accounting API served on 127.0.0.1: the door (``server.py``), the
organisation's books and Xero's rules (``organisation.py``), the ``where``
filter (``query.py``)."""

from billbridge.connectors.xero.emulator.server import API, DEFAULT_TENANT, XeroEmulator

__all__ = ["API", "DEFAULT_TENANT", "XeroEmulator"]
