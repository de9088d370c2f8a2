"""Dynamics 365 Finance's documented requests and answers, as Microsoft's
finance and operations documentation gives them (OData data entities and
the service protection limits): the contract the emulator and the connector
are held to. Finance has no official Python client; these examples are what
its wire format is known by (see docs/connectors/dynamics-finance.md).
"""

from __future__ import annotations

# "Only the user's default company is returned unless you add cross-company=true";
# the example that picks one company:
CROSS_COMPANY_QUERY = {"$filter": "dataAreaId eq 'usrt'", "cross-company": "true"}

# Microsoft's filter example on CustomersV3, with an enum literal.
ENUM_FILTER = "PersonGender eq Microsoft.Dynamics.DataEntities.Gender'Unknown'"

# Query options `has` and `in` are not supported.
UNSUPPORTED_FILTERS = ("PersonGender has Microsoft.Dynamics.DataEntities.Gender'Unknown'",
                       "CustomerAccount in ('US-001','US-002')")

# Wildcards in string eq: "eq '*text*'".
WILDCARD_FILTER = "OrganizationName eq '*Retail*'"

# "All key fields must be supplied in an entity URL", e.g.:
KEY_URL = "CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')"
PARTIAL_KEY_URL = "CustomersV3(CustomerAccount='US-001')"

# Service protection: per user, per web server, 5-minute sliding window;
# 429 with Retry-After (seconds) and these messages (Microsoft's spelling).
REQUESTS_LIMIT_MESSAGE = ("Number of requests exeeded the limit of 6000 over the time window "
                          "of 300 seconds.")
CONCURRENCY_LIMIT_MESSAGE = "Number of concurrent requests exceeded the limit of 52."
LIMITS = {"requests": 6000, "window_seconds": 300, "concurrent": 52}

# "A batch can contain up to 5000 operations"; a change set is all or none.
BATCH_OPERATIONS_LIMIT = 5000

# Server-driven paging: at most 10,000 rows a page, then @odata.nextLink.
MAX_PAGE_SIZE = 10_000
