"""The fields the tryton connector reads, as a contract (connectors.contracts)."""

from __future__ import annotations

from billbridge.connectors.contracts import declare

CONTRACT = declare("tryton", "", """
""")
