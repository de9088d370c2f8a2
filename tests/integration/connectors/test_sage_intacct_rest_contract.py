"""Fyle's ``sageintacctrestsdk`` 1.9.0, an independent REST client, run
unchanged against the Intacct emulator's REST API over HTTP: a
``client_credentials`` token, a customer created with an ``Idempotency-Key``
(and the same key answered, not run, a second time), read back by the query
service, by key and counted, updated by key; a project in an entity through
``X-IA-API-Param-Entity``; and the SDK's own reading of a refused write.

The SDK speaks only to Intacct: its URL is the module constant ``BASE_URL``,
imported into its API base and its token request, with no setting to change
it. The test points those two names at the emulator, and nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billbridge.connectors.sage_intacct.emulator import IntacctEmulator
from billbridge.connectors.sage_intacct.rest_mapping import API_PATH

sdk = pytest.importorskip("intacctsdk")
from intacctsdk import IntacctRESTSDK  # noqa: E402
from intacctsdk.exceptions import BadRequestError  # noqa: E402


@pytest.fixture
def intacct(monkeypatch: pytest.MonkeyPatch) -> Iterator[IntacctEmulator]:
    with IntacctEmulator() as emulator:
        for module in ("intacctsdk.apis.api_base", "intacctsdk.intacctsdk"):
            monkeypatch.setattr(f"{module}.BASE_URL", f"{emulator.url}{API_PATH}")
        yield emulator  # type: ignore[misc]


def connect(entity: str | None = None) -> IntacctRESTSDK:
    return IntacctRESTSDK(client_id="billbridge-client", client_secret="client-secret",
                          username="api-user@billbridge-co", entity_id=entity)


def test_the_sdk_creates_a_customer_once_per_key_and_reads_it_back(
        intacct: IntacctEmulator) -> None:
    client = connect()
    assert client.access_token and client.access_token_expires_in == 3600
    made = client.customers.post({"id": "C-100", "name": "Globex LLC", "status": "active"},
                                 idempotent_key="key-1")
    again = client.customers.post({"id": "C-100", "name": "Globex LLC", "status": "active"},
                                  idempotent_key="key-1")
    assert again == made and made["ia::result"]["id"] == "C-100"
    [row] = intacct.all("CUSTOMER")
    assert (row["CUSTOMERID"], row["NAME"], row["RECORDNO"]) == \
        ("C-100", "Globex LLC", made["ia::result"]["key"])
    [page] = list(client.customers.get_all_generator(
        fields=["key", "id", "name"], filters=[{"$eq": {"id": "C-100"}}]))
    assert page == [{"key": row["RECORDNO"], "id": "C-100", "name": "Globex LLC"}]
    assert client.customers.count(filters=[{"$eq": {"id": "C-100"}}]) == 1
    assert client.customers.count(filters=[{"$eq": {"id": "C-999"}}]) == 0
    client.customers.update(row["RECORDNO"], {"name": "Globex Inc."})
    found = client.customers.get_by_key(row["RECORDNO"])["ia::result"]
    assert (found["id"], found["name"]) == ("C-100", "Globex Inc.")


def test_the_sdk_writes_in_an_entity_and_reads_a_refusal_as_a_bad_request(
        intacct: IntacctEmulator) -> None:
    client = connect(entity="GB01")
    client.customers.post({"id": "C-200", "name": "Initech Ltd"})
    client.projects.post({"id": "P-1", "name": "Rollout", "customer": {"id": "C-200"}})
    assert {(p["PROJECTID"], p["CUSTOMERID"], p["MEGAENTITYID"])
            for p in intacct.all("PROJECT")} == {("P-1", "C-200", "GB01")}
    with pytest.raises(BadRequestError) as refused:
        client.projects.post({"id": "P-2", "name": "Nobody's", "customer": {"id": "NOBODY"}})
    assert "Invalid customer NOBODY" in str(refused.value.response)
    assert [p["PROJECTID"] for p in intacct.all("PROJECT")] == ["P-1"]
