"""SAP's own OData 2.0 client, ``pyodata`` 1.12.1, run unchanged against
the S/4HANA emulator over HTTP: it builds its model from the emulator's
``$metadata`` and reads, creates, updates and batches through it as it
would against a tenant. pyodata leaves SAP's CSRF token to the requests
session it is given, so the session does the dance first (a HEAD of the
service with ``x-csrf-token: fetch``; the token as a session header and the
session cookie then ride on every call). What pyodata writes, the hub's connector finds, and what
the connector writes, pyodata reads with the types the metadata declares."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyodata
import pytest
import requests
from pyodata.exceptions import HttpError

from billbridge.connectors.base import OutboundCommand, ResultStatus
from billbridge.connectors.sap_s4hana.client import SapClient
from billbridge.connectors.sap_s4hana.emulator import ROOT, SapEmulator
from billbridge.connectors.sap_s4hana.target import SapTarget


@pytest.fixture
def sap() -> Iterator[SapEmulator]:
    with SapEmulator(server_page_size=2) as emulator:
        yield emulator


def session_for(sap: SapEmulator, service: str) -> requests.Session:
    """A requests session with the communication user and the CSRF token,
    the way a pyodata user sets one up for SAP."""
    session = requests.Session()
    session.trust_env = False  # this machine's CA bundle variables are not for 127.0.0.1
    session.auth = (sap.user, sap.password)
    response = session.head(f"{sap.url}{ROOT}/{service}/", headers={"x-csrf-token": "fetch"})
    session.headers.update({"x-csrf-token": response.headers.get("x-csrf-token", "")})
    return session


def client(sap: SapEmulator, service: str) -> Any:
    return pyodata.Client(f"{sap.url}{ROOT}/{service}/", session_for(sap, service))


def test_pyodata_reads_the_metadata_and_pages_through_server_driven_next_links(
        sap: SapEmulator) -> None:
    bp = client(sap, "API_BUSINESS_PARTNER")
    for n in range(4):
        bp.entity_sets.A_BusinessPartner.create_entity().set(
            BusinessPartnerCategory="2", OrganizationBPName1=f"Client {n}",
            BusinessPartnerIDByExtSystem=f"cust_{n}").execute()
    page = bp.entity_sets.A_BusinessPartner.get_entities().count(inline=True).execute()
    names = [p.OrganizationBPName1 for p in page]
    while page.next_url:
        page = bp.entity_sets.A_BusinessPartner.get_entities().next_url(page.next_url).execute()
        names += [p.OrganizationBPName1 for p in page]
    assert names == ["Inlandskunde DE 1", "Client 0", "Client 1", "Client 2", "Client 3"]
    found = bp.entity_sets.A_BusinessPartner.get_entities().filter(
        "BusinessPartnerIDByExtSystem eq 'cust_2'").execute()
    assert [p.OrganizationBPName1 for p in found] == ["Client 2"]
    assert found[0].BusinessPartnerIsBlocked is False


def test_pyodata_updates_with_the_etag_and_a_stale_one_is_refused(sap: SapEmulator) -> None:
    bp = client(sap, "API_BUSINESS_PARTNER")
    created = bp.entity_sets.A_BusinessPartner.create_entity().set(
        BusinessPartnerCategory="2", OrganizationBPName1="Globex").execute()
    number = created.BusinessPartner
    read = bp.entity_sets.A_BusinessPartner.get_entity(number).execute()
    assert read.etag and read.etag == created.etag
    def update(name: str, etag: str | None) -> None:
        request = bp.entity_sets.A_BusinessPartner.update_entity(number).set(
            OrganizationBPName1=name)
        if etag is not None:
            request.add_headers({"If-Match": etag})
        request.execute()

    update("Globex LLC", read.etag)
    assert bp.entity_sets.A_BusinessPartner.get_entity(number).execute() \
        .OrganizationBPName1 == "Globex LLC"
    with pytest.raises(HttpError) as refused:  # the ETag read before the update is stale now
        update("Globex Inc", read.etag)
    assert refused.value.response.status_code == 412
    with pytest.raises(HttpError) as unguarded:
        update("Globex Inc", None)
    assert unguarded.value.response.status_code == 428


def test_a_change_without_the_csrf_token_is_refused_as_sap_refuses_it(sap: SapEmulator) -> None:
    session = requests.Session()
    session.trust_env = False
    session.auth = (sap.user, sap.password)
    bp = pyodata.Client(f"{sap.url}{ROOT}/API_BUSINESS_PARTNER/", session)
    with pytest.raises(HttpError) as refused:
        bp.entity_sets.A_BusinessPartner.create_entity().set(
            BusinessPartnerCategory="2", OrganizationBPName1="No token").execute()
    response = refused.value.response
    assert (response.status_code, response.headers["x-csrf-token"], response.text) == (
        403, "Required", "CSRF token validation failed")


def test_pyodata_batches_change_sets_and_a_refused_one_rolls_back_alone(
        sap: SapEmulator) -> None:
    projects = client(sap, "API_ENTERPRISE_PROJECT_SRV;v=0002")
    entity_set = projects.entity_sets.A_EnterpriseProject

    def create(code: str, profile: str = "YP02") -> Any:
        return entity_set.create_entity().set(
            Project=code, ProjectDescription=f"Project {code}", CompanyCode="1010",
            ProjectProfileCode=profile, ProjectStartDate=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))

    batch = projects.create_batch()
    good = projects.create_changeset()
    good.add_request(create("GLX-001"))
    good.add_request(create("GLX-002"))
    bad = projects.create_changeset()
    bad.add_request(create("GLX-003"))
    bad.add_request(create("GLX-004", profile="NOPE"))
    batch.add_request(good)
    batch.add_request(bad)
    with pytest.raises(HttpError, match="Changeset cannot be processed"):
        batch.execute()  # pyodata raises on the refused change set, as it does against SAP
    everything = [p["Project"] for p in sap.all("API_ENTERPRISE_PROJECT_SRV;v=0002",
                                                "A_EnterpriseProject")]
    assert sorted(everything) == ["GLX-001", "GLX-002", "SP-0001"]
    (glx,) = entity_set.get_entities().filter("Project eq 'GLX-001'").execute()
    assert glx.ProjectStartDate.date() == dt.date(2026, 3, 1)
    assert len(str(glx.ProjectUUID)) == 36


def test_what_pyodata_writes_the_connector_finds_and_what_the_connector_writes_pyodata_reads(
        sap: SapEmulator) -> None:
    bp = client(sap, "API_BUSINESS_PARTNER")
    written = bp.entity_sets.A_BusinessPartner.create_entity().set(
        BusinessPartnerCategory="2", OrganizationBPName1="Initech",
        BusinessPartnerIDByExtSystem="cust_initech").execute()
    target = SapTarget(SapClient(sap.url, user=sap.user, password=sap.password))
    customer = {"id": "cust_initech", "name": "Initech Inc", "currency": "USD",
                "billing_country": "US"}
    project = {"code": "SP-0001", "name": "Office move", "status": "active"}
    charge = {"id": "tc_te-1", "time_entry": "te-1", "project": "SP-0001", "worker": "w-alice",
              "work_date": "2026-03-02", "hours": "7.50", "rate": "150.00", "amount": "1125.00",
              "currency": "USD", "billable": True, "config_version": 1, "source_version": 1}
    results = target.send([
        OutboundCommand(1, "sap", "customer.upsert", "k1", "cust", customer),
        OutboundCommand(2, "sap", "project.upsert", "k2", "proj", project),
        OutboundCommand(3, "sap", "time_charge.post", "abc123", "proj", charge)])
    outcome = {r.idempotency_key: (r.status, r.external_id) for r in results}
    assert outcome == {"k1": (ResultStatus.APPLIED, written.BusinessPartner),
                       "k2": (ResultStatus.APPLIED, "SP-0001"),
                       "abc123": (ResultStatus.APPLIED, outcome["abc123"][1])}
    assert len(sap.all("API_BUSINESS_PARTNER", "A_BusinessPartner")) == 2  # updated, not twinned
    assert bp.entity_sets.A_BusinessPartner.get_entity(written.BusinessPartner).execute() \
        .OrganizationBPName1 == "Initech Inc"
    sheets = client(sap, "API_MANAGE_WORKFORCE_TIMESHEET")
    (record,) = sheets.entity_sets.TimeSheetEntryCollection.get_entities().execute()
    assert record.TimeSheetDate.date() == dt.date(2026, 3, 2)
    fields = record.TimeSheetDataFields
    # A complex type's fields come as OData 2.0 JSON has them: an Edm.Decimal is exact text.
    assert (fields["WBSElement"], fields["RecordedHours"]) == ("SP-0001", "7.50")
    assert Decimal(fields["RecordedHours"]) * Decimal("150.00") == Decimal("1125.0000")
    assert fields["TimeSheetNote"] == "billbridge tc_te-1 7.50 h 1125.00 USD [bb:abc123]"
