"""The fields the Sage Intacct source reads, as a contract (connectors.contracts):
the AR invoice object (``ARINVOICE``) as the XML gateway's ``query`` answers
it, with the fields the source asks for (``source.FIELDS`` and the change
stamp of the connection's settings). XML carries text, so every field is a
string; the version is the request's ``dtdversion``, ``3.0``. Over the REST API
(``api`` = ``rest``) the same invoice is the ``accounts-receivable/invoice``
object as ``/services/core/query`` answers it: flat, dotted field names
(``rest_mapping.FIELDS``), amounts as decimal strings, version ``v1``."""

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


def rest_contract(modified_field: str = "whenModified") -> Contract:
    return declare("sage-intacct", "v1", f"""
ARINVOICE
  string  key! invoiceNumber! state! totalTxnAmount totalTxnAmountPaid currency.txnCurrency
  string  entity.id {modified_field}!
""")
