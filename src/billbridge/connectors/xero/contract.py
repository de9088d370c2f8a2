"""The fields the Xero source reads, as a contract (connectors.contracts):
invoices and payments with the fields the Accounting API documents (Xero
leaves empty ones out; amounts are JSON numbers, dates ``/Date(ms)/``
strings). The API version is Accounting ``2.0``."""

from __future__ import annotations

from billbridge.connectors.contracts import declare

CONTRACT = declare("xero", "2.0", """
Invoice Payment
  string  UpdatedDateUTC! Date Reference
  number  CurrencyRate
Invoice
  string  InvoiceID! Status! InvoiceNumber Type DateString DueDate DueDateString
  string  LineAmountTypes BrandingThemeID Url CurrencyCode ExpectedPaymentDate
  string  PlannedPaymentDate RepeatingInvoiceID FullyPaidOnDate StatusAttributeString
  number  AmountPaid SubTotal TotalTax Total TotalDiscount AmountDue AmountCredited
  boolean SentToContact HasAttachments IsDiscounted HasErrors
  object  Contact
  array   LineItems Payments Prepayments Overpayments CreditNotes Attachments
  array   ValidationErrors Warnings
Payment
  string  PaymentID! Status PaymentType BatchPaymentID
  number  Amount BankAmount
  boolean IsReconciled HasAccount HasValidationErrors
  object  Invoice Account CreditNote Prepayment Overpayment BatchPayment
""", omits_empty=True)
