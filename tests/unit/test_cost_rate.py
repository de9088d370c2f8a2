"""A worker's cost is booked in the functional currency of the entity that
books the project: the contract's entity, else the worker's own; a contract
naming an entity the configuration does not hold keeps the worker's own
currency."""

from datetime import date
from decimal import Decimal

from billbridge.domain.billing import cost_rate
from billbridge.domain.config import load_configuration
from billbridge.domain.records import Contract

CONFIG = load_configuration({
    "legal_entities": [
        {"code": "GB01", "name": "Ltd", "country": "GB", "functional_currency": "GBP"},
        {"code": "US01", "name": "Inc", "country": "US", "functional_currency": "USD"}],
    "workers": [
        {"id": "w-us", "name": "U", "role": "consultant", "legal_entity": "US01",
         "cost_rate": "50", "currency": "GBP"}],
    "fx_rates": [{"date": "2026-03-01", "from": "GBP", "to": "USD", "rate": "1.2500"}],
})
DAY = date(2026, 3, 2)


def test_cost_with_no_contract_is_booked_in_the_worker_s_own_entity() -> None:
    worker = CONFIG.worker("w-us")
    assert worker is not None
    # 50 GBP at 1.25 = 62.5000 USD, US01's functional currency
    assert cost_rate(CONFIG, worker, None, DAY) == (Decimal("62.5000"), "USD")


def test_cost_under_a_contract_of_an_unconfigured_entity_stays_in_the_worker_s_currency(
) -> None:
    worker = CONFIG.worker("w-us")
    assert worker is not None
    contract = Contract(id="c", billing_model="fixed_fee", currency="EUR", legal_entity="XX99",
                        start=date(2026, 1, 1))
    assert CONFIG.legal_entity("XX99") is None
    assert cost_rate(CONFIG, worker, contract, DAY) == (Decimal("50"), "GBP")
