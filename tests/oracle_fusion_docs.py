"""Oracle Fusion Cloud ERP's documented requests and answers, as Oracle's REST
API references give them (each with its source; the keys [ARI], [UPC] …
are listed with their addresses in docs/connectors/oracle-fusion.md): the
contract the emulator and the connector are held to. Fusion has no official
Python client; these examples are what its wire format is known by (see
docs/connectors/oracle-fusion.md).
"""

from __future__ import annotations

VERSION = "11.13.18.05"
# [ARI] Oracle's curl examples: HTTP Basic, item payloads in this media type.
ITEM_MEDIA_TYPE = "application/vnd.oracle.adf.resourceitem+json"

# [ARI] "Create an Invoice with Lines" (financials 23d, farfa): the header and
# line fields of POST /fscmRestApi/resources/11.13.18.05/receivablesInvoices.
CREATE_INVOICE = {
    "BillToCustomerNumber": "1008", "BusinessUnit": "Vision Operations",
    "TransactionSource": "Manual-NES", "TransactionType": "Invoice",
    "TransactionDate": "2018-02-20", "TransactionNumber": "864", "PaymentTerms": "30 Net",
    "InvoiceCurrencyCode": "USD", "DueDate": "2018-02-20",
    "receivablesInvoiceLines": [{"LineNumber": 1, "Description": "Laptop",
                                 "Quantity": 2, "UnitSellingPrice": 1000,
                                 "TaxClassificationCode": "EXEMPT"}],
}
INVOICE_LINE_FIELDS = ("LineNumber", "Description", "Quantity", "UnitSellingPrice",
                       "TaxClassificationCode")
# The answer names the invoice by this id [ARI].
CREATED_INVOICE_ID = "CustomerTransactionId"

# [ARI] "Complete an Invoice" (financials 23d/25c, farfa): "the invoices they
# create are incomplete; your finance supervisor reviews the invoices and
# completes them": PATCH /receivablesInvoices/<CustomerTransactionId> with:
COMPLETE_INVOICE = {"InvoiceStatus": "Complete"}
# ... answered with these fields among others (the example's values):
COMPLETED_INVOICE_FIELDS = {"CustomerTransactionId": 300100169169047, "TransactionNumber": "864",
                            "BillToCustomerNumber": "1008", "TransactionSource": "Manual-NES",
                            "TransactionType": "Invoice", "PaymentTerms": "30 Net",
                            "InvoiceCurrencyCode": "USD"}

# [HUB, 3p] POST /crmRestApi/resources/11.13.18.05/hubOrganizations.
CREATE_ORGANIZATION = {
    "PartyNumber": "BB-1001", "OrganizationName": "Globex LLC",
    "SourceSystemReference": [{"SourceSystem": "BILLBRIDGE",
                               "SourceSystemReferenceValue": "cust_1001"}],
    "Address": [{"Country": "US"}],
}

# [UPC] op-unprocessedprojectcosts-post (project-management 24b, fapap): the
# header, "If true, the server performs an Upsert operation instead of a
# Create operation ... attempts to find an existing resource that matches the
# payload"; the default is false.
UPSERT_MODE = {"Upsert-Mode": "true"}
# [UPC, PC] a composite resource's id is a server hash: "The client should not
# generate the hash key value. Instead, the client should query on the ...
# collection resource in order to navigate to a specific instance".
COST_KEY = "unprocessedProjectCostsUniqID"

# [UPC] op-unprocessedprojectcosts-get (25b): a collection answer requires
# these, and "limit: The actual paging size used by the server".
COLLECTION_REQUIRED = ("count", "hasMore", "limit", "links", "offset")
# [3p KL, RL] default page size 25, at most 500 (some resources 499), capped silently.
DEFAULT_LIMIT, MAX_LIMIT, SOME_MAX_LIMIT = 25, 500, 499

# [BATCH] Batch_Actions (financials 23d) and Perform_Batch_Actions (sales):
# parts posted to the REST root, each {id, path, operation, payload};
# sequential; all or none (only failing parts are answered).
BATCH = {"parts": [{"id": "part1", "path": f"/{VERSION}/receivablesInvoices",
                    "operation": "create", "payload": CREATE_INVOICE}]}
BATCH_OPERATIONS = ("get", "create", "update", "replace", "delete")
