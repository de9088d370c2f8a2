"""How many calls at once each ERP connector lets the dispatchers send (its
dispatch lanes): a default under the vendor's concurrency limit that leaves
room for the polling sharing the account, the ``dispatch_lanes`` option
within that limit, and a clear error for a bad value."""

from __future__ import annotations

from typing import Any

import pytest

from billbridge.connectors.base import Connection
from billbridge.connectors.netsuite import CONNECTOR as NETSUITE
from billbridge.connectors.quickbooks import CONNECTOR as QUICKBOOKS
from billbridge.connectors.xero import CONNECTOR as XERO
from billbridge.engine.dispatcher import lanes_of

NETSUITE_URL = "https://1234567.suitetalk.api.netsuite.com"


def _lanes(spec: Any, base_url: str, **options: Any) -> int:
    connection = Connection(f"erp-{len(options)}-{sorted(options.items())}", spec.vendor,
                            base_url, credentials={"access_token": "t", "tenant_id": "x"},
                            options={"realm_id": "9130", **options})
    return lanes_of(spec.target(connection))


def test_netsuite_leaves_the_polling_one_request_of_the_account_s_limit() -> None:
    assert _lanes(NETSUITE, NETSUITE_URL) == 4  # the tier base of 5, less one
    assert _lanes(NETSUITE, NETSUITE_URL, concurrency="15") == 14  # a SuiteCloud Plus licence
    assert _lanes(NETSUITE, NETSUITE_URL, concurrency="1") == 1
    assert _lanes(NETSUITE, NETSUITE_URL, concurrency="15", dispatch_lanes="6") == 6
    assert _lanes(NETSUITE, NETSUITE_URL, concurrency="5", dispatch_lanes="9") == 5  # capped


def test_quickbooks_and_xero_stay_under_their_concurrent_request_limits() -> None:
    assert _lanes(QUICKBOOKS, "http://127.0.0.1:9") == 4
    assert _lanes(QUICKBOOKS, "http://127.0.0.1:9", dispatch_lanes="20") == 10  # the realm's
    assert _lanes(XERO, "http://127.0.0.1:9") == 3  # of the tenant's 5
    assert _lanes(XERO, "http://127.0.0.1:9", dispatch_lanes="1") == 1


@pytest.mark.parametrize("value", ["0", "-2", "four"])
def test_a_bad_lane_count_is_refused_with_its_name(value: str) -> None:
    with pytest.raises(ValueError, match="dispatch_lanes"):
        _lanes(QUICKBOOKS, "http://127.0.0.1:9", dispatch_lanes=value)
