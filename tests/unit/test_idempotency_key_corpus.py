"""The idempotency keys of a corpus of command payloads, pinned as computed before any
change to how keys are made: a key that moves would post a command already applied at the
ERP a second time (the ERP recognises a repeat only by its key)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from billbridge.domain.idempotency import canonical_json, idempotency_key, key_of_json

CHARGE = {"id": "h-1001:charge", "time_entry": "h-1001", "project": "P-7", "task": "dev",
          "worker": "w-3", "work_date": "2026-03-02", "hours": "7.50", "rate": "150.00",
          "amount": "1125.00", "currency": "EUR", "billable": True, "tax_code": None,
          "rate_card": "standard", "rate_card_version": 3, "config_version": 12,
          "source_version": 2}
CORPUS = [
    ("ledger", "time_charge.post", "time_charge:h-1001:charge:p1", CHARGE),
    ("ledger", "time_charge.reverse", "time_charge:h-1001:charge:p1:reverse",
     CHARGE | {"amount": "-1125.00", "posting": 1}),
    ("netsuite", "customer.upsert", "customer:c-9",
     {"id": "c-9", "name": "Zürich Analytics GmbH", "country": "CH", "tax_id": None}),
    ("xero", "project.upsert", "project:P-東京",
     {"code": "P-東京", "name": "東京 rollout 🚀", "customer": "c-9", "budget": "12000.00"}),
    ("quickbooks", "invoice.create", "invoice:INV-1",
     {"id": "INV-1", "lines": [{"amount": "10.00", "description": "Line\none\ttab"},
                               {"amount": "0.01", "description": "quote \" and \\ back"}],
      "issued": "2026-03-31", "Zeta": 1, "alpha": 2, "Beta": [], "é": {}}),
    ("tryton", "crm.writeback", "invoice:INV-1:writeback",
     {"controls": "\x00\x1f\x7f", "separators": "\u2028\u2029", "slash": "a/b</script>",
      "surrogate_pair": "\U0001f600", "latin1": "ÿþ", "empty": "", "nested": {"b": {"d": 1,
      "c": [None, True, False]}, "a": []}}),
    ("generic", "odd.numbers", "odd:1",
     {"float": 0.1, "big_float": 1e16, "small_float": 1e-7, "negative_zero": -0.0,
      "big_int": 2 ** 70, "negative": -42, "zero": 0}),
    ("generic", "odd.types", "odd:2",
     {"decimal": Decimal("1.10"), "date": date(2026, 3, 2),
      "datetime": datetime(2026, 3, 3, 18, 0, tzinfo=UTC), "tuple": (1, "a")}),
    ("ledger", "time_charge.post", "", {}),
    ("ledger ünïcode", "kïnd\"quoted", "origin\\with\nnewline", {"k": "v"}),
    ("generic", "ascii.controls", "odd:3",
     {"del": "a\x7fb", "nul": "\x00", "tab": "\t", "unit": "\x1f", "n": [1, -2, None, False]}),
]

PINNED = [
    "04fd1868ccfddc46e8e7ffc67664c34e",
    "b849f5a88e96ecffe92288722ff3d973",
    "9cb59289f45e30165529debf1ef282b7",
    "04bd2ffaf57349ecdce509fab90f75d4",
    "f304c94e753f5fda6387f06c69eca23f",
    "d08927a79d78757a9a581a15c471b39c",
    "950196de89d489a990369cc3441d2a24",
    "e47b533fa9f2d9a6d21b6625687a549b",
    "607684e99653bff5d46a9b1913de565e",
    "02a20961c8e0ab2fbf291d01122a745c",
    "2d3decb5c0ddb413a91a6e3bb877f552",
]


def test_keys_of_the_corpus_are_the_pinned_ones() -> None:
    assert [idempotency_key(*command) for command in CORPUS] == PINNED


def test_the_outbox_path_makes_the_same_keys() -> None:
    # enqueue_many stores the canonical JSON and keys from it.
    assert [key_of_json(t, k, o, canonical_json(c)) for t, k, o, c in CORPUS] == PINNED


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.text(alphabet=st.characters(max_codepoint=127))
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127)) | st.text(),
                       _json_values, max_size=6))
def test_canonical_json_is_the_sorted_ascii_stdlib_spelling(payload: dict[str, Any]) -> None:
    reference = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    assert canonical_json(payload) == reference
