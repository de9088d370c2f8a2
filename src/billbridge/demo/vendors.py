"""The systems the demo's story can run against, one entry per vendor and role.

An entry starts its vendor's emulator with credentials made for this run, loads
the demo's fake company in the vendor's own shape, gives the connection the hub
uses (built by the vendor's ``ConnectorSpec``, as ``billbridge serve`` builds
it) and reads back what the vendor holds, for the story to verify. Where a
vendor needs a step of its own (Kantata's approvals, projects set up in Kantata
before the deal closes), the entry takes it and says so in ``note``. A new
vendor is one class here and one line in ``CRMS``, ``TIME_TOOLS`` or ``ERPS``.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from billbridge.connectors.base import Connection
from billbridge.emulation import FaultInjector
from billbridge.emulation.server import EmulatorServer

if TYPE_CHECKING:
    from billbridge.connectors.dynamics_finance.emulator import FinanceEmulator
    from billbridge.connectors.dynamics_sales.emulator import DataverseEmulator
    from billbridge.connectors.generic.emulator import LedgerEmulator
    from billbridge.connectors.harvest.emulator import HarvestEmulator
    from billbridge.connectors.hubspot.emulator import HubSpotEmulator
    from billbridge.connectors.kantata.emulator import KantataEmulator
    from billbridge.connectors.netsuite.emulator import NetSuiteEmulator
    from billbridge.connectors.oracle_fusion.emulator import OracleEmulator
    from billbridge.connectors.quickbooks.emulator import QuickBooksEmulator
    from billbridge.connectors.replicon.emulator import RepliconEmulator
    from billbridge.connectors.sage_intacct.emulator import IntacctEmulator
    from billbridge.connectors.salesforce.emulator import SalesforceEmulator
    from billbridge.connectors.sap_s4hana.emulator import SapEmulator
    from billbridge.connectors.tempo.emulator import TempoEmulator
    from billbridge.connectors.xero.emulator import XeroEmulator

PERIOD_END = "2026-03-31"
# The demo's work folder, for a vendor that keeps files of its own there (Tryton's database).
WORKDIR = "BILLBRIDGE_DEMO_WORKDIR"


# -- the story's fake company, vendor-neutral -----------------------------------------
@dataclass(frozen=True, slots=True)
class Person:
    key: str
    name: str
    worker: str | None  # the consultant the time tool's user is mapped to; None: unmapped


ALICE = Person("alice", "Alice Ng", "w-alice")
BOB = Person("bob", "Bob Ruiz", "w-bob")
CAROL = Person("carol", "Carol Diaz", "w-carol")
# Dave is not mapped on purpose: his hours show how an entry the mapping cannot
# read lands in the exception queue with its raw payload.
DAVE = Person("dave", "Dave Kim", None)
PEOPLE = (ALICE, BOB, CAROL, DAVE)


@dataclass(frozen=True, slots=True)
class Deal:
    number: int  # the story's own number for the deal and its company
    company: str
    tax_id: str
    name: str
    code: str  # the project code the deal carries


GLOBEX = Deal(1, "Globex LLC", "US-12-3456789", "Globex ERP rollout", "GLX-001")
INITECH = Deal(2, "Initech Inc", "US-98-7654321", "Initech data platform", "NEW-002")


@dataclass(frozen=True, slots=True)
class Entry:
    number: int  # the story's own number for the entry
    person: Person
    code: str
    hours: Decimal
    day: str = "2026-03-02"


@dataclass(frozen=True, slots=True)
class DealView:
    """What the CRM shows on a deal once the hub has written back."""

    erp_project_id: str | None
    erp_customer_id: str | None
    invoice_status: str | None


@dataclass(frozen=True, slots=True)
class ErpInvoice:
    """A customer invoice as the ERP holds it."""

    invoice: str  # the canonical invoice id, read from the ERP's own record
    erp_id: str
    total: Decimal
    currency: str


def erp_invoices(records: Iterable[Mapping[str, Any]], invoice: str, erp_id: str, total: str,
                 currency: str) -> list[ErpInvoice]:
    """The invoices an ERP's records hold, by the fields of the canonical
    invoice id, the ERP's own id, the total and the currency."""
    return [ErpInvoice(str(r[invoice]), str(r[erp_id]), Decimal(str(r[total])), str(r[currency]))
            for r in records]


class VendorUnavailable(RuntimeError):
    """A vendor's system cannot be started here; the message says what to install."""


def credential() -> str:
    """A secret of this run only: no credential is built into the demo."""
    return secrets.token_urlsafe(24)


OAUTH = ("access_token", "refresh_token", "client_id", "client_secret")
E = TypeVar("E")


def keyed(make: Callable[..., E], names: Sequence[str], **others: Any) -> tuple[E, dict[str, str]]:
    """An emulator made with a credential of this run for each of ``names``
    (and ``others`` as they are), and those credentials."""
    keys = {name: credential() for name in names}
    return make(**keys, **others), keys


class Emulated:
    """The steps every entry takes with its vendor's emulator: start it, give
    its URL (with the API's path) and its fault injector, stop it. An entry
    names its emulator's class in its own ``emulator`` annotation."""

    emulator: EmulatorServer
    url: str
    faults: FaultInjector
    _keys: dict[str, str]

    def _serve(self, emulator: EmulatorServer, path: str = "") -> None:
        self.emulator = emulator
        emulator.start()
        self.url = f"{emulator.url}{path}"
        self.faults = emulator.faults

    def _serve_keyed(self, make: Callable[..., EmulatorServer], names: Sequence[str],
                     path: str = "", **others: Any) -> None:
        """Serve an emulator made with a credential of this run for each of
        ``names`` (kept in ``_keys``), and ``others`` as they are."""
        emulator, self._keys = keyed(make, names, **others)
        self._serve(emulator, path)

    def stop(self) -> None:
        self.emulator.stop()


class EmulatedErp(Emulated):
    """An emulated ERP: one lost acknowledgement and one throttle on its
    writes, and a connector source the hub polls for invoice status."""

    fault_script: Sequence[Any] = ("lost_ack", "429:0")
    polled = True


# -- the three roles ------------------------------------------------------------------
class Crm(Protocol):
    name: str  # the connection's name: the hub's source and target name
    label: str
    url: str
    note: str

    def connection(self) -> Connection: ...
    def win(self, deal: Deal) -> None:
        """The deal is won (with its company) in the CRM."""
    def deal(self, deal: Deal) -> DealView: ...
    def stop(self) -> None: ...


class TimeTool(Protocol):
    name: str
    label: str
    url: str
    note: str

    def connection(self) -> Connection: ...
    def set_up(self) -> None:
        """The firm's account: its people, the Development task, and the
        projects delivery set up before the deals closed."""
    def log(self, entries: Sequence[Entry]) -> None:
        """Consultants log ``entries`` and their manager approves them."""
    def entry_id(self, entry: Entry) -> str:
        """The canonical id of ``entry``."""
    def project_view(self, code: str) -> str:
        """What the time tool shows of the ERP's ids on the project ``code``."""
    def stop(self) -> None: ...


class Erp(Protocol):
    name: str
    label: str
    url: str
    note: str
    faults: FaultInjector
    fault_script: Sequence[Any]  # one lost acknowledgement and one throttle, on writes
    polled: bool  # the hub polls the ERP's connector source for invoice status

    def connection(self) -> Connection: ...
    def invoices(self) -> list[ErpInvoice]: ...
    def pay(self, invoice: ErpInvoice) -> list[dict[str, Any]]:
        """The customer pays ``invoice`` in full; the events to ingest from
        the ERP when the ERP has no feed the hub polls (else none)."""
    def stop(self) -> None: ...


# -- CRMs -----------------------------------------------------------------------------
class HubSpotCrm(Emulated):
    name, label, note = "hubspot", "HubSpot", ""
    emulator: HubSpotEmulator

    def __init__(self) -> None:
        from billbridge.connectors.hubspot.emulator import HubSpotEmulator

        self._serve_keyed(HubSpotEmulator, ("token",))

    def connection(self) -> Connection:
        return Connection(self.name, "hubspot", self.url,
                          credentials={"access_token": self._keys["token"]})

    def win(self, deal: Deal) -> None:
        company, deal_id = str(900 + deal.number), str(1000 + deal.number)
        self.emulator.seed(
            companies=[{"id": company, "properties": {
                "name": deal.company, "country": "US", "tax_id": deal.tax_id}}],
            deals=[{"id": deal_id, "properties": {
                "dealname": deal.name, "amount": "50000.00",
                "closedate": "2026-03-01T09:00:00Z", "dealstage": "closedwon",
                "pipeline": "default", "deal_currency_code": "USD",
                "billing_model": "time_and_materials", "legal_entity": "US01",
                "contract_start": "2026-03-01", "contract_end": "2026-12-31",
                "rate_card": "rc-standard", "project_code": deal.code}}],
            associations=[(deal_id, company)])

    def deal(self, deal: Deal) -> DealView:
        found = self.emulator.get("deals", str(1000 + deal.number))["properties"]
        return DealView(found.get("erp_project_id"), found.get("erp_customer_id"),
                        found.get("invoice_status"))


class SalesforceCrm(Emulated):
    name, label, note = "salesforce", "Salesforce", ""
    emulator: SalesforceEmulator

    def __init__(self) -> None:
        from billbridge.connectors.salesforce.emulator import SalesforceEmulator

        self._serve_keyed(SalesforceEmulator, ("client_secret", "refresh_token", "access_token"))
        self._deals: dict[int, str] = {}

    def connection(self) -> Connection:
        return Connection(self.name, "salesforce", self.url, credentials={
            "client_id": "billbridge", "client_secret": self._keys["client_secret"],
            "refresh_token": self._keys["refresh_token"]})

    def win(self, deal: Deal) -> None:
        (account,) = self.emulator.seed({"Account": [{
            "Name": deal.company, "BillingCountry": "United States",
            "Tax_Id__c": deal.tax_id, "CurrencyIsoCode": "USD"}]})["Account"]
        (opportunity,) = self.emulator.seed({"Opportunity": [{
            "Name": deal.name, "AccountId": account, "StageName": "Closed Won",
            "IsWon": True, "Amount": 50000.0, "CloseDate": "2026-03-01",
            "CurrencyIsoCode": "USD", "Billing_Model__c": "Time and Materials",
            "Legal_Entity__c": "US01", "Contract_Start__c": "2026-03-01",
            "Contract_End__c": "2026-12-31", "Rate_Card__c": "rc-standard",
            "Project_Code__c": deal.code}]})["Opportunity"]
        self._deals[deal.number] = opportunity

    def deal(self, deal: Deal) -> DealView:
        from billbridge.connectors.salesforce.mapping import DEFAULT_WRITEBACK as FIELDS

        found = self.emulator.record("Opportunity", self._deals[deal.number])
        return DealView(found.get(FIELDS["erp_project_id"]), found.get(FIELDS["erp_customer_id"]),
                        found.get(FIELDS["invoice_status"]))


class DynamicsSalesCrm(Emulated):
    name, label, note = "dynamics-sales", "Dynamics 365 Sales", ""
    emulator: DataverseEmulator

    def __init__(self) -> None:
        from billbridge.connectors.dynamics_sales.emulator import DataverseEmulator
        from billbridge.connectors.dynamics_sales.emulator.company import CURRENCIES

        self._secret = credential()
        emulator = DataverseEmulator(company=False, client_secret=self._secret)
        emulator.seed(transactioncurrencies=CURRENCIES)
        self._serve(emulator)

    def connection(self) -> Connection:
        return Connection(self.name, "dynamics-sales", self.url, credentials={
            "tenant": self.emulator.tenant, "client_id": self.emulator.client_id,
            "client_secret": self._secret}, options={"authority": self.url})

    def _ids(self, deal: Deal) -> tuple[str, str]:
        return (f"a11ce000-0000-4000-8000-{deal.number:012d}",
                f"0bb00000-0000-4000-8000-{deal.number:012d}")

    def win(self, deal: Deal) -> None:
        from billbridge.connectors.dynamics_sales.emulator.company import USD, won

        account, opportunity = self._ids(deal)
        self.emulator.seed(
            accounts=[{"accountid": account, "name": deal.company,
                       "address1_country": "United States", "bb_taxid": deal.tax_id,
                       "_transactioncurrencyid_value": USD}],
            opportunities=[won(opportunity, account, deal.code, name=deal.name,
                               amount="50000.00", bb_projectname=deal.name)])

    def deal(self, deal: Deal) -> DealView:
        account, opportunity = self._ids(deal)
        found = self.emulator.row("opportunities", opportunity)
        return DealView(found.get("bb_erpprojectid"),
                        self.emulator.row("accounts", account).get("bb_erpcustomerid"),
                        found.get("bb_invoicestatus"))


# -- time tools ------------------------------------------------------------------------
class HarvestTool(Emulated):
    name, label = "harvest", "Harvest"
    reports_unmapped = True  # its mapping marks Dave's entry with UnmappedPerson (D72)
    emulator: HarvestEmulator
    note = ("Harvest has no webhooks: the hub polls it, and each poll reads again the "
            "minute before the previous one began.")
    ACCOUNT = "123456"
    USERS: ClassVar[Mapping[str, int]] = {
        ALICE.key: 3001, BOB.key: 3002, CAROL.key: 3003, DAVE.key: 3004}
    DEVELOPMENT = 8083366  # the Harvest task that is the canonical "dev" task

    def __init__(self) -> None:
        from billbridge.connectors.harvest.emulator import HarvestEmulator

        self._serve_keyed(HarvestEmulator, ("token",), "/v2", account_id=self.ACCOUNT)

    def connection(self) -> Connection:
        workers = {str(self.USERS[p.key]): p.worker for p in PEOPLE if p.worker}
        return Connection(self.name, "harvest", self.url, credentials={
            "token": self._keys["token"], "account_id": self.ACCOUNT}, options={
            "user_agent": "billbridge demo (demo@example.com)", "workers": workers,
            "tasks": {str(self.DEVELOPMENT): "dev"}})

    def set_up(self) -> None:
        self.emulator.seed(
            users=[{"id": self.USERS[p.key], "name": p.name} for p in PEOPLE],
            clients=[{"id": 5735801, "name": INITECH.company}],
            projects=[{"id": 14308201, "name": INITECH.name, "code": INITECH.code,
                       "client_id": 5735801}],
            tasks=[{"id": self.DEVELOPMENT, "name": "Development"}])

    def log(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            project = self.emulator.project_by_code(entry.code)
            assert project is not None, f"no Harvest project {entry.code}"
            self.emulator.log_time(entry_id=2100 + entry.number,
                                   user=self.USERS[entry.person.key], project=project["id"],
                                   task=self.DEVELOPMENT, spent_date=entry.day,
                                   hours=float(entry.hours))
        self.emulator.approve("time_entries", *(2100 + e.number for e in entries))

    def entry_id(self, entry: Entry) -> str:
        from billbridge.connectors.harvest.mapping import canonical_id

        return canonical_id("time_entry", 2100 + entry.number)

    def project_view(self, code: str) -> str:
        project = self.emulator.project_by_code(code)
        return str(project["notes"]) if project else ""


class KantataTool(Emulated):
    name, label = "kantata", "Kantata"
    reports_unmapped = True
    emulator: KantataEmulator
    note = ("Kantata: delivery sets both projects up in Kantata before the deals close "
            "(the hub writes ERP ids onto projects, it does not create them), and time is "
            "approved by submitting a timesheet that the manager approves.")
    USERS: ClassVar[Mapping[str, str]] = {
        ALICE.key: "7", BOB.key: "8", CAROL.key: "9", DAVE.key: "10"}
    FIELDS: ClassVar[Mapping[str, str]] = {
        "project_code": "501", "erp_project_id": "502", "erp_customer_id": "503",
        "invoice_status": "504"}
    WORKSPACES: ClassVar[Mapping[str, str]] = {GLOBEX.code: "77", INITECH.code: "78"}
    STORIES: ClassVar[Mapping[str, str]] = {GLOBEX.code: "900", INITECH.code: "901"}

    def __init__(self) -> None:
        from billbridge.connectors.kantata.emulator import KantataEmulator

        self._serve_keyed(KantataEmulator, ("token",), "/api/v1")

    def connection(self) -> Connection:
        workers = {self.USERS[p.key]: p.worker for p in PEOPLE if p.worker}
        return Connection(self.name, "kantata", self.url,
                          credentials={"access_token": self._keys["token"]},
                          options={"workers": workers, "custom_fields": self.FIELDS})

    def set_up(self) -> None:
        self.emulator.seed(
            custom_fields=[{"id": i, "name": n.replace("_", " ").title()}
                           for n, i in self.FIELDS.items()],
            users=[{"id": self.USERS[p.key], "full_name": p.name} for p in PEOPLE],
            workspaces=[{"id": w, "title": d.name} for d, w in
                        ((GLOBEX, self.WORKSPACES[GLOBEX.code]),
                         (INITECH, self.WORKSPACES[INITECH.code]))])
        for code, workspace in self.WORKSPACES.items():
            self.emulator.set_custom_value("Workspace", workspace,
                                           self.FIELDS["project_code"], code)
            self.emulator.add("stories", {"id": self.STORIES[code], "workspace_id": workspace,
                                          "title": "Development"})

    def log(self, entries: Sequence[Entry]) -> None:
        by_person: dict[str, list[str]] = {}
        for entry in entries:
            self.emulator.add("time_entries", {
                "id": str(2100 + entry.number), "workspace_id": self.WORKSPACES[entry.code],
                "user_id": self.USERS[entry.person.key], "story_id": self.STORIES[entry.code],
                "date_performed": entry.day, "time_in_minutes": int(entry.hours * 60)})
            by_person.setdefault(entry.person.key, []).append(str(2100 + entry.number))
        for ids in by_person.values():  # one timesheet per person, approved by the manager
            self.emulator.resolve("time_entries", self.emulator.submit("time_entries", ids),
                                  "approved")

    def entry_id(self, entry: Entry) -> str:
        return f"kt-te-{2100 + entry.number}"

    def project_view(self, code: str) -> str:
        workspace = self.WORKSPACES[code]
        return "\n".join(f"{name}: {self.emulator.custom_value('Workspace', workspace, i)}"
                         for name, i in self.FIELDS.items())


class TempoTool(Emulated):
    name, label = "tempo", "Tempo"
    emulator: TempoEmulator
    note = ("Tempo: consultants log time on Jira issues against the Tempo account of each "
            "project code, and a manager approves each consultant's monthly timesheet; the hub "
            "polls worklogs and approvals. Tempo has no field for other systems' ids, so "
            "nothing is written back to it.")
    writes_back = False
    reports_unmapped = True  # its mapping marks Dave's worklog with UnmappedPerson (D72)
    USERS: ClassVar[Mapping[str, str]] = {
        ALICE.key: "5b10a2844c20165700ede21g", BOB.key: "5b10ac8d82e05b22cc7d4ef5",
        CAROL.key: "5b109f2e9729b51b54dc274d", DAVE.key: "70121:dave"}
    ISSUES: ClassVar[Mapping[str, int]] = {GLOBEX.code: 10101, INITECH.code: 10102}

    def __init__(self) -> None:
        from billbridge.connectors.tempo.emulator import TempoEmulator

        self._serve_keyed(TempoEmulator, ("token", "jira_token"), "/4")

    def connection(self) -> Connection:
        # Tasks by Jira issue key, as people name issues; the keys are read from Jira.
        workers = {self.USERS[p.key]: p.worker for p in PEOPLE if p.worker}
        return Connection(self.name, "tempo", self.url, credentials={
            "token": self._keys["token"], "jira_email": "jira@example.com",
            "jira_api_token": self._keys["jira_token"]}, options={
            "workers": workers, "jira_url": self.emulator.url,
            "tasks": {self._key(code): "dev" for code in self.ISSUES}})

    @staticmethod
    def _key(code: str) -> str:
        return f"{code.partition('-')[0]}-1"

    def set_up(self) -> None:
        self.emulator.seed(users={self.USERS[p.key]: p.name for p in PEOPLE},
                           accounts={GLOBEX.code: GLOBEX.name, INITECH.code: INITECH.name},
                           issues={i: self._key(code) for code, i in self.ISSUES.items()})

    def log(self, entries: Sequence[Entry]) -> None:
        from billbridge.connectors.tempo.emulator import period_of

        sheets: dict[tuple[str, str], str] = {}
        for entry in entries:
            author = self.USERS[entry.person.key]
            self.emulator.log(author=author, issue=self.ISSUES[entry.code], account=entry.code,
                              day=entry.day, seconds=int(entry.hours * 3600),
                              worklog_id=2100 + entry.number, jira_id=30100 + entry.number)
            sheets[(author, period_of(entry.day)[0])] = entry.day
        for (author, _period), day in sheets.items():  # each timesheet approved once
            if self.emulator.render_approval(author, day)["status"]["key"] != "APPROVED":
                self.emulator.act(author, day, "submit")
                self.emulator.act(author, day, "approve")

    def entry_id(self, entry: Entry) -> str:
        from billbridge.connectors.tempo.mapping import canonical_id

        return canonical_id(30100 + entry.number)

    def project_view(self, code: str) -> str:
        account = self.emulator.accounts.get(code) or {}
        return (f"Tempo account {code} ({account.get('name')}, {account.get('status')}); "
                "Tempo holds no ERP ids: nothing is written back")


class RepliconTool(Emulated):
    name, label = "replicon", "Replicon"
    emulator: RepliconEmulator
    note = ("Replicon: the hub polls the timesheet and expense sheet lists by last-modified "
            "and reads each changed sheet again; consultants log a week's timesheet and their "
            "manager approves it.")
    LOGINS: ClassVar[Mapping[str, str]] = {p.key: p.key for p in PEOPLE}
    reports_unmapped = True  # its mapping marks Dave's entry with UnmappedPerson (D72)

    def __init__(self) -> None:
        from billbridge.connectors.replicon.emulator import RepliconEmulator

        self._serve_keyed(RepliconEmulator, ("token",))
        self.url = self.emulator.root

    def connection(self) -> Connection:
        workers = {self.LOGINS[p.key]: p.worker for p in PEOPLE if p.worker}
        return Connection(self.name, "replicon", self.url, credentials=self._keys,
                          options={"workers": workers})

    def set_up(self) -> None:
        tenant = self.emulator.tenant
        self.users = {p.key: tenant.add_user(self.LOGINS[p.key], p.name) for p in PEOPLE}
        tenant.add_project(INITECH.name, INITECH.code)

    def log(self, entries: Sequence[Entry]) -> None:
        """One timesheet a person and week, approved by the manager."""
        from datetime import date, timedelta

        from billbridge.connectors.replicon.mapping import APPROVED, WAITING

        tenant = self.emulator.tenant
        sheets: dict[tuple[str, date], Any] = {}
        with self.emulator.lock:
            for entry in entries:
                day = date.fromisoformat(entry.day)
                monday = day - timedelta(days=day.weekday())
                sheet = sheets.get((entry.person.key, monday))
                if sheet is None:
                    sheet = sheets[(entry.person.key, monday)] = tenant.timesheet(
                        self.users[entry.person.key], monday, monday + timedelta(days=6))
                project = tenant.project_by_code(entry.code)
                assert project is not None, f"no Replicon project {entry.code}"
                tenant.log(sheet, project["uri"], day, entry.hours, row_key=2100 + entry.number)
            for sheet in sheets.values():
                tenant.set_status(sheet, WAITING)
                tenant.set_status(sheet, APPROVED)

    def entry_id(self, entry: Entry) -> str:
        """A cell of the entry's own timesheet row: ``te_replicon_2101_20260302``."""
        return f"te_replicon_{2100 + entry.number}_{entry.day.replace('-', '')}"

    def project_view(self, code: str) -> str:
        project = self.emulator.tenant.project_by_code(code)
        return str(project["description"]) if project else ""


class CsvTool:
    """A time system with no API: it exports approved hours as CSV files into a
    folder the hub watches, and nothing can be written back to it."""

    reports_unmapped = True

    name, label = "csv", "timesheet files"
    note = ("Timesheet files: the firm's old time system exports approved hours as CSV into "
            "a folder the hub watches; a file has no API, so no ERP ids go back to it.")
    writes_back = False

    def __init__(self) -> None:
        from billbridge.connectors.timesheet_files.emulator import TimesheetExporter

        self.folder = Path(tempfile.mkdtemp(prefix="billbridge-timesheets-"))
        self.exporter = TimesheetExporter(self.folder)
        self.url = f"file://{self.folder}"
        self._exports = 0

    def connection(self) -> Connection:
        # The export names people; the connection maps names to consultants.
        workers = {p.name: p.worker for p in PEOPLE if p.worker}
        return Connection(self.name, "csv", self.url, options={"workers": workers})

    def set_up(self) -> None:
        """Nothing to set up: the export names projects by their official code."""

    def log(self, entries: Sequence[Entry]) -> None:
        self._exports += 1
        self.exporter.export(f"timesheets-{self._exports:03d}.csv", [
            {"Entry ID": f"TS-{2100 + e.number}", "Employee": e.person.name,
             "Project": e.code, "Task": "dev", "Date": e.day, "Hours": str(e.hours),
             "Billable": "yes", "Notes": "", "Status": "Approved"} for e in entries])

    def entry_id(self, entry: Entry) -> str:
        return f"te_csv_TS-{2100 + entry.number}"

    def project_view(self, code: str) -> str:
        return f"(a file export: nothing is written back to {code})"

    def stop(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


# -- ERPs --------------------------------------------------------------------------------
class LedgerErp(EmulatedErp):
    name, label = "ledger", "the generic ledger"
    emulator: LedgerEmulator
    note = "The ledger has no invoice feed: it reports a payment as an event."
    polled = False  # the generic vendor's source is a time source, not the ledger's

    def __init__(self) -> None:
        from billbridge.connectors.generic.emulator import LedgerEmulator

        self._serve_keyed(LedgerEmulator, ("token",))

    def connection(self) -> Connection:
        return Connection(self.name, "generic", self.url, credentials=self._keys,
                          options={"timeout": 1.0})

    def invoices(self) -> list[ErpInvoice]:
        return [ErpInvoice(str(p["data"]["id"]), str(p["id"]), Decimal(p["data"]["total"]),
                           str(p["data"]["currency"]))
                for p in self.emulator.postings("invoice.create")]

    def pay(self, invoice: ErpInvoice) -> list[dict[str, Any]]:
        return [{"type": "invoice.status_changed", "id": f"pay-{invoice.erp_id}",
                 "at": "2026-04-20T12:00:00Z",
                 "data": {"invoice": invoice.invoice, "status": "paid"}}]


class NetSuiteErp(EmulatedErp):
    name, label = "netsuite", "NetSuite"
    emulator: NetSuiteEmulator
    note = ("NetSuite: the hub polls invoice status and payments with SuiteQL; a time "
            "bill's memo names the charge it posts.")
    ACCOUNT = "1234567_SB1"

    def __init__(self) -> None:
        from billbridge.connectors.netsuite.emulator import NetSuiteEmulator

        self._serve_keyed(NetSuiteEmulator, ("consumer_key", "consumer_secret", "token_id",
                                             "token_secret"), account=self.ACCOUNT)

    def connection(self) -> Connection:
        # The emulator answers asynchronous jobs at once: poll them without the
        # production back-off, so the story does not wait on it.
        return Connection(self.name, "netsuite", self.url, credentials=self._keys,
                          options={"account": self.ACCOUNT, "job_first_wait": 0.05,
                                   "job_poll": 0.05})

    def invoices(self) -> list[ErpInvoice]:
        from billbridge.connectors.netsuite.mapping import memo_record

        return [ErpInvoice(memo_record(i.get("memo")) or str(i.get("externalId")),
                           str(i["id"]), Decimal(str(i["total"])), str(i.get("currency") or ""))
                for i in self.emulator.all("invoice")]

    def pay(self, invoice: ErpInvoice) -> list[dict[str, Any]]:
        self.emulator.pay_invoice(invoice.erp_id)
        return []


class QuickBooksErp(EmulatedErp):
    name, label = "quickbooks", "QuickBooks Online"
    emulator: QuickBooksEmulator
    note = ("QuickBooks: time activities need an employee per consultant, which the "
            "connector finds or creates by name; the hub polls invoices and payments.")

    def __init__(self) -> None:
        from billbridge.connectors.quickbooks.emulator import QuickBooksEmulator

        self._serve_keyed(QuickBooksEmulator, OAUTH)

    def connection(self) -> Connection:
        return Connection(self.name, "quickbooks", self.url, credentials=self._keys, options={
            "realm_id": self.emulator.realm_id, "token_url": self.emulator.token_url,
            "tax_codes": {"US-NOTAX": "NON"}})

    def invoices(self) -> list[ErpInvoice]:
        from billbridge.connectors.quickbooks.mapping import read_marker

        found = []
        for invoice in self.emulator.records("Invoice"):
            marker = read_marker(invoice.get("PrivateNote"))
            currency = (invoice.get("CurrencyRef") or {}).get("value", "")
            found.append(ErpInvoice(marker.canonical_id if marker else "", str(invoice["Id"]),
                                    Decimal(str(invoice["TotalAmt"])), str(currency)))
        return found

    def pay(self, invoice: ErpInvoice) -> list[dict[str, Any]]:
        self.emulator.pay(invoice.erp_id, invoice.total)
        return []


class XeroErp(EmulatedErp):
    name, label = "xero", "Xero"
    emulator: XeroEmulator
    note = ("Xero: invoices arrive as drafts, so the accountant approves the invoice in "
            "Xero before the customer's payment is recorded; the hub polls both.")

    def __init__(self) -> None:
        from billbridge.connectors.xero.emulator import XeroEmulator

        self._serve_keyed(XeroEmulator, OAUTH)

    def connection(self) -> Connection:
        from billbridge.connectors.xero.emulator import DEFAULT_TENANT

        return Connection(self.name, "xero", self.url,
                          credentials={**self._keys, "tenant_id": DEFAULT_TENANT},
                          options={"token_url": f"{self.url}/connect/token",
                                   "tax_types": {"US-NOTAX": "NONE"}})

    def invoices(self) -> list[ErpInvoice]:
        return erp_invoices([i for i in self.emulator.invoices() if i.get("Status") != "VOIDED"],
                            "InvoiceNumber", "InvoiceID", "Total", "CurrencyCode")

    def pay(self, invoice: ErpInvoice) -> list[dict[str, Any]]:
        self.emulator.authorise(invoice.erp_id)
        self.emulator.pay(invoice.erp_id, invoice.total)
        return []


class DynamicsFinanceErp(EmulatedErp):
    name, label = "dynamics-finance", "Dynamics 365 Finance"
    emulator: FinanceEmulator
    note = ("Dynamics 365 Finance: free-text invoices are posted by the accountant in "
            "Finance before the customer's payment is marked against them; the hub polls "
            "both.")

    def __init__(self) -> None:
        from billbridge.connectors.dynamics_finance.emulator import FinanceEmulator

        self._serve_keyed(FinanceEmulator, ("client_secret",))

    def connection(self) -> Connection:
        return Connection(self.name, "dynamics-finance", self.url, credentials={
            "tenant": self.emulator.tenant, "client_id": self.emulator.client_id,
            **self._keys}, options={
            "token_url": self.emulator.token_url, "tax_groups": {"US-NOTAX": "EXEMPT"},
            "timeout": 5.0})

    def invoices(self) -> list[ErpInvoice]:
        return [ErpInvoice(str(i["InvoiceIdentifier"]),
                           f"{i['dataAreaId']}/{i['InvoiceIdentifier']}",
                           Decimal(str(i["TotalInvoiceAmount"])), str(i["CurrencyCode"]))
                for i in self.emulator.all("FreeTextInvoiceHeaders")]

    def pay(self, invoice: ErpInvoice) -> list[dict[str, Any]]:
        company, _, number = invoice.erp_id.partition("/")
        self.emulator.post_invoice(company, number)
        self.emulator.pay(company, number, invoice.total)
        return []


class SageIntacctErp(EmulatedErp):
    name, label = "sage-intacct", "Sage Intacct"
    emulator: IntacctEmulator
    note = ("Sage Intacct: the hub writes over the XML gateway, many functions to a "
            "request, each keyed by its controlid under uniqueid; a timesheet's entry names "
            "the charge it posts, and the hub polls AR invoices for payments.")

    def __init__(self) -> None:
        from billbridge.connectors.sage_intacct.client import GATEWAY_PATH
        from billbridge.connectors.sage_intacct.emulator import IntacctEmulator
        from billbridge.emulation.faults import Fault, FaultRule

        # The lost acknowledgement falls on a write (a create), not on a session.
        self.fault_script = (FaultRule(Fault.LOST_ACK, path_prefix=f"{GATEWAY_PATH}/create"),
                             "429:0")
        self._keys = {"sender_id": "billbridge-demo", "sender_password": credential(),
                      "user_id": "api-user", "company_id": "billbridge-demo",
                      "user_password": credential()}
        self._serve(IntacctEmulator(
            sender_id=self._keys["sender_id"], sender_password=self._keys["sender_password"],
            company_id=self._keys["company_id"], user_id=self._keys["user_id"],
            user_password=self._keys["user_password"]))

    def connection(self) -> Connection:
        return Connection(self.name, "sage-intacct", self.url, credentials=self._keys,
                          options={"timeout": 5.0, "throttle_wait": 0.05})

    def invoices(self) -> list[ErpInvoice]:
        return erp_invoices(self.emulator.all("ARINVOICE"), "RECORDID", "RECORDNO",
                            "TOTALENTERED", "CURRENCY")

    def pay(self, invoice: ErpInvoice) -> list[dict[str, Any]]:
        self.emulator.pay(invoice.erp_id, invoice.total)
        return []


class SageIntacctRestErp(SageIntacctErp):
    name, label = "sage-intacct-rest", "Sage Intacct (REST API)"
    note = ("Sage Intacct over its REST API: an OAuth client's token, many writes to a "
            "composite call, each subrequest carrying the command's Idempotency-Key; the "
            "same records as over the XML gateway, and the hub polls AR invoices through "
            "the query service.")

    def __init__(self) -> None:
        from billbridge.connectors.sage_intacct.emulator import IntacctEmulator
        from billbridge.connectors.sage_intacct.rest_mapping import API_PATH, COMPOSITE
        from billbridge.emulation.faults import Fault, FaultRule

        # Both fall on the API's calls, not on the token request.
        self.fault_script = (FaultRule(Fault.LOST_ACK, path_prefix=f"{API_PATH}{COMPOSITE}"),
                             FaultRule(Fault.RATE_LIMITED, retry_after=0,
                                       path_prefix=f"{API_PATH}/services/"))
        self._keys = {"client_id": "billbridge-demo", "client_secret": credential()}
        self._serve(IntacctEmulator(client_id=self._keys["client_id"],
                                    client_secret=self._keys["client_secret"]))

    def connection(self) -> Connection:
        return Connection(self.name, "sage-intacct", self.url, credentials=self._keys,
                          options={"api": "rest", "timeout": 5.0, "throttle_wait": 0.05})


class OracleFusionErp(EmulatedErp):
    name, label = "oracle-fusion", "Oracle Fusion Cloud ERP"
    emulator: OracleEmulator
    note = ("Oracle Fusion: invoices arrive incomplete and a finance supervisor completes "
            "them; the customer's receipt names the invoice and AutoMatch applies it; the hub "
            "polls both.")

    def __init__(self) -> None:
        from billbridge.connectors.oracle_fusion.emulator import OracleEmulator

        self._serve_keyed(OracleEmulator, ("password",))

    def connection(self) -> Connection:
        return Connection(self.name, "oracle-fusion", self.url, credentials={
            "username": self.emulator.username, **self._keys}, options={
            "tax_codes": {"US-NOTAX": "EXEMPT"}, "timeout": 5.0})

    def invoices(self) -> list[ErpInvoice]:
        return erp_invoices([i for i in self.emulator.all("receivablesInvoices")
                             if i.get("TransactionSource") == "BILLBRIDGE"],
                            "TransactionNumber", "CustomerTransactionId", "EnteredAmount",
                            "InvoiceCurrencyCode")

    def pay(self, invoice: ErpInvoice) -> list[dict[str, Any]]:
        self.emulator.complete_invoice(invoice.erp_id)
        self.emulator.receipt(invoice.invoice, invoice.total)
        return []


class SapS4HanaErp(EmulatedErp):
    name, label = "sap-s4hana", "SAP S/4HANA Cloud"
    emulator: SapEmulator
    note = ("SAP S/4HANA Cloud: invoices go in as debit memo requests, which SAP bills into "
            "billing documents; the customer's payment clears the billing document's "
            "receivable, and the hub polls both. Every change carries the session's CSRF token.")

    def __init__(self) -> None:
        from billbridge.connectors.sap_s4hana.emulator import ROOT, SapEmulator
        from billbridge.emulation import Fault, FaultRule

        self._serve_keyed(SapEmulator, ("password",))
        # The lost acknowledgement hits a write (a $batch), not a look-up before it.
        self.fault_script = (FaultRule(Fault.LOST_ACK,
                                       path_prefix=f"{ROOT}/API_BUSINESS_PARTNER/$batch"), "429:0")

    def connection(self) -> Connection:
        return Connection(self.name, "sap-s4hana", self.url, credentials={
            "user": self.emulator.user, **self._keys}, options={"timeout": 5.0})

    def invoices(self) -> list[ErpInvoice]:
        return erp_invoices(self.emulator.all("API_DEBIT_MEMO_REQUEST_SRV", "A_DebitMemoRequest"),
                            "PurchaseOrderByCustomer", "DebitMemoRequest", "TotalNetAmount",
                            "TransactionCurrency")

    def pay(self, invoice: ErpInvoice) -> list[dict[str, Any]]:
        document = self.emulator.bill(invoice.erp_id)
        self.emulator.clear(document["BillingDocument"])
        return []


class FileDropErp:
    name, label = "filedrop", "a legacy ERP (file drop over SFTP)"
    note = ("The legacy ERP's only interface is a folder on its SFTP server: the hub drops CSV "
            "files with manifests there, the ERP's import job posts them and writes "
            "acknowledgement files, its receivables export says when an invoice is paid, and "
            "the hub reads both back.")
    # An upload whose answer is lost with the connection, and one cut half way.
    fault_script: Sequence[Any] = ("lost_ack", "5xx")
    polled = True

    def __init__(self) -> None:
        from billbridge.connectors.filedrop.emulator import FileDropEmulator

        folder = Path(os.environ.get(WORKDIR) or tempfile.mkdtemp()) / "filedrop"
        self.emulator = FileDropEmulator(folder, password=credential()).start()
        self.url = self.emulator.url
        self.faults = self.emulator.faults

    def connection(self) -> Connection:
        return Connection(self.name, "filedrop", self.url, credentials={
            "username": self.emulator.username, "password": self.emulator.password,
            "host_key": self.emulator.host_key}, options={"timeout": 5.0})

    def invoices(self) -> list[ErpInvoice]:
        self.emulator.erp.import_once()  # the import job's next run, now
        return [ErpInvoice(i.invoice, i.erp_id, i.total, i.currency)
                for i in self.emulator.erp.ledger.invoices]

    def pay(self, invoice: ErpInvoice) -> list[dict[str, Any]]:
        self.emulator.erp.pay(invoice.erp_id)
        return []

    def stop(self) -> None:
        self.emulator.stop()


CRMS: dict[str, Callable[[], Crm]] = {"hubspot": HubSpotCrm, "salesforce": SalesforceCrm,
                                      "dynamics-sales": DynamicsSalesCrm}
TIME_TOOLS: dict[str, Callable[[], TimeTool]] = {"harvest": HarvestTool, "kantata": KantataTool,
                                                  "tempo": TempoTool, "replicon": RepliconTool,
                                                  "csv": CsvTool}


class TrytonErp:
    name, label = "tryton", "Tryton"
    note = ("Tryton: a real trytond on SQLite in the demo's folder (tryton/), its firm set up "
            "once and kept in the user's cache; the accountant records the payment with "
            "Tryton's Pay wizard, and the hub polls invoice states.")
    fault_script: Sequence[Any] = ("lost_ack", "429:0")
    polled = True

    def __init__(self) -> None:
        from billbridge.connectors.tryton.emulator import TrytonFaultProxy
        from billbridge.connectors.tryton.emulator.launcher import (
            TrytonServer,
            build_template,
            missing,
            template_directory,
        )

        if problem := missing():
            raise VendorUnavailable(problem)
        folder = Path(os.environ.get(WORKDIR) or tempfile.mkdtemp()) / "tryton"
        folder.mkdir(parents=True, exist_ok=True)
        cache = template_directory()
        cache.mkdir(parents=True, exist_ok=True)
        self.server = TrytonServer(build_template(cache), folder).start()
        # The hub reaches Tryton through a proxy that can lose an acknowledgement.
        self.proxy = TrytonFaultProxy(upstream=self.server.url).start()
        self.url = self.proxy.url
        self.faults = self.proxy.faults

    def connection(self) -> Connection:
        from billbridge.connectors.tryton.emulator.launcher import PASSWORD

        return Connection(self.name, "tryton", self.url, credentials={"password": PASSWORD},
                          options=self.server.options(timeout=5))

    def _reader(self) -> Any:
        from billbridge.connectors.tryton.client import TrytonClient
        from billbridge.connectors.tryton.emulator.launcher import DATABASE, PASSWORD

        return TrytonClient(self.server.url, DATABASE, username="admin", password=PASSWORD,
                            company=self.server.ids["company"])

    def invoices(self) -> list[ErpInvoice]:
        reader = self._reader()
        rows = reader.search_read("account.invoice", [("type", "=", "out"),
                                                      ("state", "!=", "cancelled")],
                                  ["reference", "total_amount", "currency"])
        codes = {c["id"]: c["code"] for c in reader.read(
            "currency.currency", sorted({r["currency"] for r in rows}), ["code"])}
        return [ErpInvoice(str(r["reference"]), str(r["id"]), Decimal(str(r["total_amount"])),
                           str(codes[r["currency"]])) for r in rows]

    def pay(self, invoice: ErpInvoice) -> list[dict[str, Any]]:
        self.server.pay(int(invoice.erp_id))
        return []

    def stop(self) -> None:
        self.proxy.stop()
        self.server.stop()


ERPS: dict[str, Callable[[], Erp]] = {"ledger": LedgerErp, "netsuite": NetSuiteErp,
                                      "quickbooks": QuickBooksErp, "xero": XeroErp,
                                      "dynamics-finance": DynamicsFinanceErp,
                                      "sage-intacct": SageIntacctErp,
                                      "sage-intacct-rest": SageIntacctRestErp,
                                      "oracle-fusion": OracleFusionErp,
                                      "sap-s4hana": SapS4HanaErp,
                                      "tryton": TrytonErp, "filedrop": FileDropErp}
DEFAULTS = {"crm": "hubspot", "time": "harvest", "erp": "ledger"}
