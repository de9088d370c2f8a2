"""The fields the Tryton source reads, as a contract (connectors.contracts):
customer invoices (``account.invoice``) read with ``search_read`` and the
source's field list (``source.FIELDS``, and the ``id`` Tryton always adds),
as the JSON-RPC client decodes them: amounts ``Decimal`` (numbers), stamps
``datetime`` (text on the wire's terms). Tryton's RPC has no API version; the
contract is the module series the connector is built and tested against,
``8.2`` (trytond and its modules, pinned in pyproject)."""

from __future__ import annotations

from billbridge.connectors.contracts import declare

CONTRACT = declare("tryton", "8.2", """
account.invoice
  number  id! total_amount amount_to_pay
  string  reference! state! write_date create_date
""")
