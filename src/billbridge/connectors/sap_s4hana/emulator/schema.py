"""The S/4HANA Cloud OData 2.0 services the emulator serves, as data: each
service's entity sets, their keys, properties (with their Edm types), the
key SAP numbers itself, the navigation properties a deep insert and
``$expand`` follow, and the ``$metadata`` document written from the same
table (so ``pyodata`` reads exactly what the emulator keeps). Names follow
more-vendors.md section 6; what it marks unverified is noted in
docs/connectors/sap-s4hana.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr


@dataclass(frozen=True)
class Prop:
    name: str
    type: str = "Edm.String"


@dataclass(frozen=True)
class EntitySet:
    name: str
    key: tuple[str, ...]
    props: tuple[Prop, ...]
    numbered: str | None = None  # the key field SAP assigns from a number range
    first_number: int = 1
    width: int = 10  # digits of an assigned number
    required: tuple[str, ...] = ()
    navs: dict[str, str] = field(default_factory=dict)  # navigation → child entity set
    creatable: bool = True
    stamp: str | None = None  # the change stamp (Edm.DateTimeOffset), also the ETag

    @property
    def type_name(self) -> str:
        return f"{self.name}Type"

    def prop(self, name: str) -> Prop | None:
        return next((p for p in self.props if p.name == name), None)


@dataclass(frozen=True)
class Service:
    name: str  # as in the URL, e.g. API_ENTERPRISE_PROJECT_SRV;v=0002
    sets: dict[str, EntitySet]
    complex_types: dict[str, tuple[Prop, ...]] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.name.split(";")[0]


def _props(*names: str, **typed: str) -> tuple[Prop, ...]:
    return tuple(Prop(n) for n in names) + tuple(Prop(n, t) for n, t in typed.items())


STAMP = "LastChangeDateTime"
DTO = "Edm.DateTimeOffset"

SERVICES: dict[str, Service] = {s.name: s for s in (
    Service("API_BUSINESS_PARTNER", {
        "A_BusinessPartner": EntitySet(
            "A_BusinessPartner", ("BusinessPartner",), _props(
                "BusinessPartner", "BusinessPartnerCategory", "BusinessPartnerFullName",
                "BusinessPartnerGrouping", "OrganizationBPName1", "SearchTerm1",
                "BusinessPartnerIDByExtSystem", BusinessPartnerIsBlocked="Edm.Boolean",
                LastChangeDateTime=DTO),
            numbered="BusinessPartner", first_number=10100000,
            required=("BusinessPartnerCategory",),
            navs={"to_BusinessPartnerTax": "A_BusinessPartnerTaxNumber"}, stamp=STAMP),
        "A_BusinessPartnerTaxNumber": EntitySet(
            "A_BusinessPartnerTaxNumber", ("BusinessPartner", "BPTaxType"),
            _props("BusinessPartner", "BPTaxType", "BPTaxNumber"), required=("BPTaxNumber",)),
    }),
    Service("API_ENTERPRISE_PROJECT_SRV;v=0002", {
        "A_EnterpriseProject": EntitySet(
            "A_EnterpriseProject", ("ProjectUUID",), _props(
                "Project", "ProjectDescription", "ProjectProfileCode", "CompanyCode",
                "ResponsibleCostCenter", "ProfitCenter", "ProcessingStatus", "Customer",
                ProjectUUID="Edm.Guid", ProjectStartDate="Edm.DateTime",
                ProjectEndDate="Edm.DateTime", LastChangeDateTime=DTO),
            numbered="ProjectUUID",
            required=("Project", "ProjectDescription", "ProjectStartDate", "CompanyCode",
                      "ProjectProfileCode"), stamp=STAMP),
    }),
    Service("API_MANAGE_WORKFORCE_TIMESHEET", {
        "TimeSheetEntryCollection": EntitySet(
            "TimeSheetEntryCollection",
            ("PersonWorkAgreementExternalID", "CompanyCode", "TimeSheetRecord"), _props(
                "PersonWorkAgreementExternalID", "CompanyCode", "TimeSheetRecord",
                "TimeSheetStatus", "TimeSheetOperation", TimeSheetDate="Edm.DateTime",
                TimeSheetIsReleasedOnSave="Edm.Boolean",
                TimeSheetDataFields="API_MANAGE_WORKFORCE_TIMESHEET.TimeSheetDataFields"),
            numbered="TimeSheetRecord", first_number=100000000000, width=12,
            required=("PersonWorkAgreementExternalID", "CompanyCode", "TimeSheetOperation")),
    }, complex_types={"TimeSheetDataFields": _props(
        "WBSElement", "ActivityType", "HoursUnitOfMeasure", "BillingControlCategory",
        "TimeSheetNote", RecordedHours="Edm.Decimal", RecordedQuantity="Edm.Decimal")}),
    Service("API_DEBIT_MEMO_REQUEST_SRV", {
        "A_DebitMemoRequest": EntitySet(
            "A_DebitMemoRequest", ("DebitMemoRequest",), _props(
                "DebitMemoRequest", "DebitMemoRequestType", "SalesOrganization",
                "DistributionChannel", "OrganizationDivision", "SoldToParty",
                "PurchaseOrderByCustomer", "TransactionCurrency", TotalNetAmount="Edm.Decimal",
                LastChangeDateTime=DTO),
            numbered="DebitMemoRequest", first_number=70000000, width=8,
            required=("DebitMemoRequestType", "SalesOrganization", "SoldToParty",
                      "TransactionCurrency"),
            navs={"to_Item": "A_DebitMemoRequestItem"}, stamp=STAMP),
        "A_DebitMemoRequestItem": EntitySet(
            "A_DebitMemoRequestItem", ("DebitMemoRequest", "DebitMemoRequestItem"), _props(
                "DebitMemoRequest", "DebitMemoRequestItem", "Material",
                "DebitMemoRequestItemText", "RequestedQuantityUnit", "TransactionCurrency",
                "WBSElement", RequestedQuantity="Edm.Decimal", NetAmount="Edm.Decimal"),
            required=("Material", "NetAmount")),
    }),
    Service("API_BILLING_DOCUMENT_SRV", {
        "A_BillingDocument": EntitySet(
            "A_BillingDocument", ("BillingDocument",), _props(
                "BillingDocument", "BillingDocumentType", "SoldToParty", "TransactionCurrency",
                "OverallBillingStatus", "CompanyCode", BillingDocumentDate="Edm.DateTime",
                TotalNetAmount="Edm.Decimal", BillingDocumentIsCancelled="Edm.Boolean",
                LastChangeDateTime=DTO),
            numbered="BillingDocument", first_number=90000000, width=8,
            navs={"to_Item": "A_BillingDocumentItem"}, creatable=False, stamp=STAMP),
        "A_BillingDocumentItem": EntitySet(
            "A_BillingDocumentItem", ("BillingDocument", "BillingDocumentItem"), _props(
                "BillingDocument", "BillingDocumentItem", "ReferenceSDDocument",
                "ReferenceSDDocumentItem", "BillingDocumentItemText",
                NetAmount="Edm.Decimal"), creatable=False),
    }),
    Service("API_OPLACCTGDOCITEMCUBE_SRV", {
        "A_OperationalAcctgDocItemCube": EntitySet(
            "A_OperationalAcctgDocItemCube",
            ("CompanyCode", "FiscalYear", "AccountingDocument", "AccountingDocumentItem"),
            _props("CompanyCode", "FiscalYear", "AccountingDocument", "AccountingDocumentItem",
                   "AccountingDocumentItemType", "Customer", "BillingDocument",
                   "TransactionCurrency", "ClearingAccountingDocument",
                   ClearingDate="Edm.DateTime", AmountInTransactionCurrency="Edm.Decimal"),
            creatable=False),
    }),
)}


def _property_xml(prop: Prop, key: bool) -> str:
    nullable = ' Nullable="false"' if key else ""
    extra = ' Precision="16" Scale="3"' if prop.type == "Edm.Decimal" else ""
    if prop.type == "Edm.DateTime":
        extra = ' Precision="0" sap:display-format="Date"'
    return f'<Property Name="{prop.name}" Type="{prop.type}"{nullable}{extra}/>'


def metadata(service: Service) -> str:
    """The service's ``$metadata`` (EDMX 1.0, OData 2.0, with SAP's
    annotations namespace)."""
    ns = service.namespace
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" '
           'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" '
           'xmlns:sap="http://www.sap.com/Protocols/SAPData">',
           '<edmx:DataServices m:DataServiceVersion="2.0">',
           f'<Schema Namespace={quoteattr(ns)} xml:lang="en" sap:schema-version="1" '
           'xmlns="http://schemas.microsoft.com/ado/2008/09/edm">']
    for name, props in service.complex_types.items():
        out.append(f'<ComplexType Name="{name}">' + "".join(
            _property_xml(p, False) for p in props) + "</ComplexType>")
    for entity in service.sets.values():
        keys = "".join(f'<PropertyRef Name="{k}"/>' for k in entity.key)
        navs = "".join(
            f'<NavigationProperty Name="{nav}" Relationship="{ns}.assoc_{entity.name}_{nav}" '
            f'FromRole="FromRole_{entity.name}_{nav}" ToRole="ToRole_{entity.name}_{nav}"/>'
            for nav in entity.navs)
        out.append(f'<EntityType Name="{entity.type_name}"><Key>{keys}</Key>' + "".join(
            _property_xml(p, p.name in entity.key) for p in entity.props) + navs +
            "</EntityType>")
    links = [(e, nav, child) for e in service.sets.values() for nav, child in e.navs.items()]
    for entity, nav, child in links:
        out.append(
            f'<Association Name="assoc_{entity.name}_{nav}">'
            f'<End Type="{ns}.{entity.type_name}" Multiplicity="1" '
            f'Role="FromRole_{entity.name}_{nav}"/>'
            f'<End Type="{ns}.{service.sets[child].type_name}" Multiplicity="*" '
            f'Role="ToRole_{entity.name}_{nav}"/></Association>')
    out.append(f'<EntityContainer Name="{ns}_Entities" m:IsDefaultEntityContainer="true">')
    for entity in service.sets.values():
        creatable = "" if entity.creatable else ' sap:creatable="false"'
        out.append(f'<EntitySet Name="{entity.name}" EntityType="{ns}.{entity.type_name}"'
                   f'{creatable}/>')
    for entity, nav, child in links:
        out.append(
            f'<AssociationSet Name="assoc_{entity.name}_{nav}_set" '
            f'Association="{ns}.assoc_{entity.name}_{nav}">'
            f'<End EntitySet="{entity.name}" Role="FromRole_{entity.name}_{nav}"/>'
            f'<End EntitySet="{child}" Role="ToRole_{entity.name}_{nav}"/>'
            "</AssociationSet>")
    out += ["</EntityContainer>", "</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"]
    return "\n".join(out)
