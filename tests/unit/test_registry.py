"""Every registered vendor is a complete connector folder, found by its name."""

import pytest

from billbridge.connectors.registry import VENDORS, connector, parse_connection


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_each_registered_vendor_loads_its_connector(vendor: str) -> None:
    spec = connector(vendor)
    assert spec.vendor == vendor
    assert spec.source or spec.target or spec.webhooks


def test_an_unknown_vendor_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown vendor 'sap'; known: "):
        connector("sap")


def test_connection_specs_take_credentials_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLBRIDGE_CRM_ACCESS_TOKEN", "t0k")
    connection = parse_connection("crm=hubspot+http://127.0.0.1:9")
    assert (connection.vendor, connection.base_url) == ("hubspot", "http://127.0.0.1:9")
    assert connection.credentials == {"access_token": "t0k"}
    assert parse_connection("ledger=http://x").vendor == "generic"
