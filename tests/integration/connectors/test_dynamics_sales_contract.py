"""Microsoft's own clients, unchanged, against the Dataverse emulator (TLS):
MSAL's ConfidentialClientApplication gets a client-credentials token from the
emulator's authority, and PowerPlatform-Dataverse-Client pages through
opportunities, upserts an account by alternate key and sends a $batch of
change sets. If the emulator's paths, paging, multipart answers or token
endpoint were wrong, these clients would say so. Our connector then reads
back what Microsoft's client wrote."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msal  # type: ignore[import-untyped]
import pytest
import requests
from azure.core.credentials import AccessToken
from PowerPlatform.Dataverse.client import DataverseClient as MicrosoftClient
from PowerPlatform.Dataverse.models.upsert import UpsertItem

from billbridge.connectors.base import RateLimit
from billbridge.connectors.dynamics_sales.client import DataverseClient
from billbridge.connectors.dynamics_sales.emulator import DataverseEmulator
from billbridge.connectors.dynamics_sales.emulator.company import GLOBEX, OPPORTUNITIES
from billbridge.connectors.dynamics_sales.source import DynamicsSource
from billbridge.emulation.tls import self_signed

TENANT, CLIENT_ID, SECRET = "billbridge-tenant", "billbridge-app", "dataverse-secret"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return self_signed(Path(tmp_path_factory.mktemp("dataverse-contract-tls")))


@pytest.fixture
def dataverse(cert: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
              ) -> Iterator[DataverseEmulator]:
    # Microsoft's client calls requests without a session of its own: it trusts
    # the CA bundle the environment names.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert[0])
    emulator = DataverseEmulator(tls=cert)
    emulator.start()
    yield emulator
    emulator.stop()


class MsalCredential:
    """An azure-core TokenCredential backed by MSAL's confidential client."""

    def __init__(self, app: msal.ConfidentialClientApplication) -> None:
        self.app = app

    def get_token(self, *scopes: str, **_kwargs: object) -> AccessToken:
        answer = self.app.acquire_token_for_client(scopes=list(scopes))
        assert "access_token" in answer, answer
        return AccessToken(answer["access_token"], int(time.time()) + int(answer["expires_in"]))


@pytest.fixture
def microsoft(dataverse: DataverseEmulator, cert: tuple[str, str]) -> MicrosoftClient:
    session = requests.Session()
    session.verify = cert[0]
    session.trust_env = False
    app = msal.ConfidentialClientApplication(
        CLIENT_ID, client_credential=SECRET, authority=f"{dataverse.url}/{TENANT}",
        http_client=session, instance_discovery=False)
    return MicrosoftClient(dataverse.url, MsalCredential(app))


def test_msal_gets_a_client_credentials_token_from_the_emulators_authority(
        dataverse: DataverseEmulator, cert: tuple[str, str]) -> None:
    session = requests.Session()
    session.verify, session.trust_env = cert[0], False
    app = msal.ConfidentialClientApplication(
        CLIENT_ID, client_credential=SECRET, authority=f"{dataverse.url}/{TENANT}",
        http_client=session, instance_discovery=False)
    answer = app.acquire_token_for_client(scopes=[f"{dataverse.url}/.default"])
    assert answer.get("token_type") == "Bearer" and answer["access_token"] in \
        dataverse.valid_tokens
    refused = msal.ConfidentialClientApplication(
        CLIENT_ID, client_credential="wrong", authority=f"{dataverse.url}/{TENANT}",
        http_client=session, instance_discovery=False).acquire_token_for_client(
        scopes=[f"{dataverse.url}/.default"])
    assert refused.get("error") == "invalid_client"


def test_the_official_client_pages_through_opportunities_by_next_link(
        dataverse: DataverseEmulator, microsoft: MicrosoftClient) -> None:
    pages = list(microsoft.records.get("opportunity", select=["name", "statecode"],
                                       page_size=1))
    assert [len(page) for page in pages] == [1, 1, 1]
    names = sorted(str(row["name"]) for page in pages for row in page)
    assert names == sorted(str(o["name"]) for o in OPPORTUNITIES)
    won = [row for page in microsoft.records.get("opportunity", filter="statecode eq 1",
                                                 select=["name"]) for row in page]
    assert len(won) == 2


def test_an_alternate_key_upsert_and_a_batch_of_change_sets_from_the_official_client(
        dataverse: DataverseEmulator, microsoft: MicrosoftClient) -> None:
    microsoft.records.upsert("account", [UpsertItem(alternate_key={"accountnumber": "UMB"},
                                                    record={"name": "Umbrella"})])
    microsoft.records.upsert("account", [UpsertItem(alternate_key={"accountnumber": "UMB"},
                                                    record={"name": "Umbrella Corp"})])
    assert [a["name"] for a in dataverse.all_rows("accounts")
            if a.get("accountnumber") == "UMB"] == ["Umbrella Corp"]

    first = str(OPPORTUNITIES[0]["opportunityid"])
    batch = microsoft.batch.new()
    with batch.changeset() as changes:
        changes.records.update("opportunity", first, {"bb_erpprojectid": 4711})
    with batch.changeset() as changes:
        changes.records.update("opportunity", "0bb00000-0000-4000-8000-0000000000ff",
                       {"bb_erpprojectid": 1})
    with batch.changeset() as changes:
        changes.records.update("account", GLOBEX, {"bb_erpcustomerid": 815})
    result = batch.execute(continue_on_error=True)
    assert [r.status_code for r in result.responses] == [204, 404, 204]
    assert dataverse.row("opportunities", first)["bb_erpprojectid"] == 4711
    assert dataverse.row("accounts", GLOBEX)["bb_erpcustomerid"] == 815

    ours = DataverseClient(dataverse.url, tenant=TENANT, client_id=CLIENT_ID,
                           client_secret=SECRET, authority=dataverse.url, verify=dataverse.tls[0]
                           if dataverse.tls else True, rate_limit=RateLimit(100, 1, burst=100))
    events = [e for page in DynamicsSource(ours).poll(None) for e in page.events]
    assert {e["data"]["opportunity"]["name"] for e in events} == {
        "Globex data platform", "Initech billing revamp"}
