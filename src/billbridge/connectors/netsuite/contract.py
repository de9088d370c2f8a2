"""The columns the NetSuite invoice source reads with SuiteQL, as a contract
(connectors.contracts). SuiteQL answers every value as a string and leaves a
null column out of the row; ``links`` is the REST envelope's. The API version
is the REST record and query service's ``v1``."""

from __future__ import annotations

from billbridge.connectors.contracts import declare

CONTRACT = declare("netsuite", "v1", """
transaction
  string  id! externalid status! foreigntotal! foreignamountunpaid modified!
""", ignored={"links"}, omits_empty=True)
