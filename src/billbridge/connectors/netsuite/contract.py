"""The columns the NetSuite invoice source reads with SuiteQL, as a contract
(connectors.contracts). SuiteQL answers every value as a string and leaves a
null column out of the row; ``links`` is the REST envelope's. The API version
is the REST record and query service's ``v1``."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, FieldType, optional, required

S, A = FieldType.STRING, FieldType.ARRAY

CONTRACT = Contract("netsuite", "v1", {"transaction": {
    "id": required(S), "externalid": optional(S), "status": required(S),
    "foreigntotal": required(S), "foreignamountunpaid": optional(S), "modified": required(S),
}}, ignored=frozenset({"links"}), omits_empty=True)
