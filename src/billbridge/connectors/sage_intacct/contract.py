"""The fields the Sage Intacct source reads, as a contract (connectors.contracts):
the AR invoice object (``ARINVOICE``) as the XML gateway's ``query`` answers
it, with the fields the source asks for (``source.FIELDS`` and the change
stamp of the connection's settings). XML carries text, so every field is a
string; the version is the request's ``dtdversion``, ``3.0``."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, declare
from billbridge.connectors.sage_intacct.client import DTD_VERSION
from billbridge.connectors.sage_intacct.mapping import IntacctSettings


def contract(settings: IntacctSettings | None = None) -> Contract:
    s = settings or IntacctSettings()
    return declare("sage-intacct", DTD_VERSION, f"""
ARINVOICE
  string  RECORDNO! RECORDID! STATE! TOTALPAID TOTALENTERED CURRENCY MEGAENTITYID
  string  {s.modified_field}!
""")
