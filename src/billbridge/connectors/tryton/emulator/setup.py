"""The one-time set-up a firm does in Tryton before billbridge posts to it:
company, fiscal years with periods and invoice sequences, a chart of accounts,
a payment term, a labour product, taxes and one employee per worker.

Run once per template by ``launcher.build_template`` in a process of its own
(proteus runs trytond in-process against the template database):

    python -m billbridge.connectors.tryton.emulator.setup CONFIG_FILE DATABASE OUTPUT_JSON

It writes the ids the connector's options need (company, labour product,
employees, taxes) and the cash payment method an accountant pays with to
OUTPUT_JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from typing import Any

WORKERS = {"w-alice": "Alice Ng", "w-bob": "Bob Ruiz", "w-carol": "Carol Diaz"}


def main(config_file: str, database: str, output: str) -> None:
    from proteus import Model, config
    from trytond.modules.account.tests.tools import (
        create_chart,
        create_fiscalyear,
        create_tax,
        get_accounts,
    )
    from trytond.modules.account_invoice.tests.tools import (
        create_payment_term,
        set_fiscalyear_invoice_sequences,
    )
    from trytond.modules.company.tests.tools import create_company

    config.set_trytond(database=database, config_file=config_file)
    Party = Model.get("party.party")
    firm = Party(name="Acme Consulting Inc")
    firm.save()
    create_company(party=firm, currency="USD")
    company = Model.get("company.company").find()[0]
    create_chart(company)
    accounts = get_accounts(company)

    # Fiscal years from the first billed period to a year ahead of today, so
    # that an invoice posted today and one dated in the scenarios both find an
    # open period.
    today = dt.date.today()
    for year in range(min(2026, today.year), today.year + 2):
        fiscalyear = set_fiscalyear_invoice_sequences(create_fiscalyear(
            company, today=(dt.date(year, 1, 1), dt.date(year, 12, 31))))
        fiscalyear.save()
        fiscalyear.click("create_period")

    payment_term = create_payment_term()
    payment_term.save()

    vat = create_tax(Decimal("0.20"))
    vat.name = vat.description = "VAT 20%"
    vat.save()

    category = Model.get("product.category")(name="Professional services", accounting=True)
    category.account_revenue = accounts["revenue"]
    category.save()
    hour, = Model.get("product.uom").find([("name", "=", "Hour")])
    template = Model.get("product.template")(name="Consulting labour", type="service",
                                             default_uom=hour, list_price=Decimal(0),
                                             account_category=category)
    template.save()
    labour, = template.products

    cash, = Model.get("account.journal").find([("code", "=", "CASH")])
    method = Model.get("account.invoice.payment.method")(
        name="Cash", journal=cash, credit_account=accounts["cash"],
        debit_account=accounts["cash"])
    method.save()

    Employee = Model.get("company.employee")
    employees: dict[str, int] = {}
    for worker, name in WORKERS.items():
        party = Party(name=name)
        party.save()
        employee = Employee(party=party, company=company)
        employee.save()
        employees[worker] = employee.id

    ids: dict[str, Any] = {
        "company": company.id,
        "labour_product": labour.id,
        "payment_term": payment_term.id,
        "employees": employees,
        "taxes": {"US-NOTAX": [], "VAT20": [vat.id]},
        "revenue": accounts["revenue"].id,
        "payment_method": method.id,
    }
    with open(output, "w") as out:
        json.dump(ids, out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
