"""An org of won deals for the Salesforce tests: ``count`` Accounts, each
with one won time-and-materials Opportunity whose project code is ``P-<i>``."""

from __future__ import annotations

from billbridge.connectors.salesforce.emulator import SalesforceEmulator


def seed_won_deals(emulator: SalesforceEmulator, count: int) -> None:
    accounts = emulator.seed({"Account": [
        {"Name": f"Client {i}", "BillingCountry": "United States", "Tax_Id__c": f"TAX-{i}",
         "CurrencyIsoCode": "USD"} for i in range(count)]})["Account"]
    emulator.seed({"Opportunity": [
        {"Name": f"Deal {i}", "AccountId": accounts[i], "StageName": "Closed Won",
         "IsWon": True, "Amount": 50000.0, "CloseDate": "2026-03-01",
         "CurrencyIsoCode": "USD", "Billing_Model__c": "Time and Materials",
         "Legal_Entity__c": "US01", "Contract_Start__c": "2026-03-01",
         "Contract_End__c": "2026-12-31", "Rate_Card__c": "rc-standard",
         "Project_Code__c": f"P-{i}"} for i in range(count)]})
