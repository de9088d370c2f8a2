"""An Oracle Fusion Cloud ERP pod on 127.0.0.1: ``/crmRestApi`` with
``hubOrganizations`` and ``/fscmRestApi`` with ``projects``,
``unprocessedProjectCosts``, ``projectCosts``, ``receivablesInvoices`` (with
``receivablesInvoiceLines``) and ``standardReceipts`` (with
``remittanceReferences``), under ``/resources/11.13.18.05`` or
``/resources/latest``; HTTP Basic; ``q`` (rowmatch), ``orderBy``,
``limit``/``offset`` with ``items``/``count``/``hasMore``/``limit``/
``offset``/``links``; ``Upsert-Mode``; the framework's batch (``parts[]``
posted to ``/…/resources``, sequential, all or none); Oracle's error bodies
(plain text, or the framework's JSON); and the shared fault injection.

Where the sources are thin the emulator takes a setting
and tests run both readings: the page-size cap and default, a ``hasMore``
that is false once ``offset`` is used, whether ``Upsert-Mode`` is honoured,
whether a repeated cost reference or transaction number is refused, the
error body's shape, the batch media type, and when costs are imported.
What it leaves out is listed in docs/connectors/oracle-fusion.md."""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billbridge.connectors.odata import dumps
from billbridge.connectors.oracle_fusion.emulator import company
from billbridge.connectors.oracle_fusion.emulator.query import QueryError, ordered, parse_q
from billbridge.emulation.server import EmulatorServer, Request, Response

VERSIONS = ("11.13.18.05", "latest")
STAMP = "LastUpdateDate"
ITEM = "application/vnd.oracle.adf.resourceitem+json"
ERROR_JSON = "application/vnd.oracle.adf.error+json"
COLLECTION = "application/vnd.oracle.adf.resourcecollection+json"
BATCH_TYPES = ("application/vnd.oracle.adf.batch+json", "application/json")


@dataclass(frozen=True)
class Resource:
    api: str  # crmRestApi or fscmRestApi
    key: str  # the item's id in its URL
    number: str | None = None  # an alternate key Upsert-Mode matches on
    required: tuple[str, ...] = ()


RESOURCES: dict[str, Resource] = {
    "hubOrganizations": Resource("crmRestApi", "PartyNumber", "PartyNumber",
                                 ("OrganizationName",)),
    "projects": Resource("fscmRestApi", "ProjectId", "ProjectNumber",
                         ("ProjectNumber", "ProjectName")),
    "unprocessedProjectCosts": Resource(
        "fscmRestApi", "unprocessedProjectCostsUniqID", None,
        ("TransactionSource", "Document", "DocumentEntry", "ProjectNumber",
         "ExpenditureType", "ExpenditureItemDate", "Quantity")),
    "projectCosts": Resource("fscmRestApi", "projectCostsUniqID"),
    "receivablesInvoices": Resource("fscmRestApi", "CustomerTransactionId", None,
                                    ("BillToCustomerNumber", "BusinessUnit",
                                     "TransactionSource", "TransactionType",
                                     "InvoiceCurrencyCode")),
    "standardReceipts": Resource("fscmRestApi", "StandardReceiptId"),
}
CREATABLE = ("hubOrganizations", "projects", "unprocessedProjectCosts", "receivablesInvoices")


class Refused(Exception):
    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code


class OracleEmulator(EmulatorServer):
    """One Fusion pod. Items live in ``items[resource][id]``; every write
    stamps ``LastUpdateDate`` (UTC, one spelling, so strings sort as times)."""

    def __init__(self, *, port: int = 0, username: str = company.USERNAME,
                 password: str = "fusion-password", seed: bool = True,
                 max_limit: int = 500, default_limit: int = 25,
                 has_more_after_offset: bool = True, honour_upsert_mode: bool = True,
                 unique_cost_references: bool = False,
                 unique_transaction_numbers: bool = False, error_format: str = "text",
                 batch_types: tuple[str, ...] = BATCH_TYPES, import_costs: bool = False,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(port=port, token=None)
        self.username, self.password = username, password
        self.max_limit, self.default_limit = max_limit, default_limit
        self.has_more_after_offset = has_more_after_offset
        self.honour_upsert_mode = honour_upsert_mode
        self.unique_cost_references = unique_cost_references
        self.unique_transaction_numbers = unique_transaction_numbers
        self.error_format = error_format
        self.batch_types = batch_types
        self.import_on_create = import_costs
        self.now = clock or (lambda: datetime.now(UTC))
        self.items: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in RESOURCES}
        self.calls: list[tuple[str, str, int]] = []  # (method, path, status) of API calls
        self.batches: list[int] = []  # parts in each batch received
        self._ids = itertools.count(300100000000001)
        self._journal: list[tuple[str, str, dict[str, Any] | None]] | None = None
        for api in ("crmRestApi", "fscmRestApi"):
            root = f"/{api}/resources"
            self.route("POST", root, self._api(self._batch))
            self.route("GET", root + "/{version}/{resource}", self._api(self._get_collection))
            self.route("POST", root + "/{version}/{resource}", self._api(self._post))
            self.route("GET", root + "/{version}/{resource}/{id}", self._api(self._get_item))
            self.route("PATCH", root + "/{version}/{resource}/{id}", self._api(self._patch))
        if seed:
            for row in company.ORGANIZATIONS:
                self.put("hubOrganizations", dict(row))
            for row in company.PROJECTS:
                self.put("projects", dict(row))

    # -- state -----------------------------------------------------------------------
    def _stamp(self) -> str:
        return self.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")

    def put(self, resource: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Create (an id given when the fields have none) or merge an item; a copy back."""
        spec = RESOURCES[resource]
        with self.lock:
            row = dict(fields)
            if row.get(spec.key) in (None, ""):
                row[spec.key] = self._new_id(resource, row)
            key = str(row[spec.key])
            previous = self.items[resource].get(key)
            if self._journal is not None:
                self._journal.append((resource, key, copy.deepcopy(previous)))
            stamp = self._stamp()
            merged = {**(previous or {"CreationDate": stamp}), **row, STAMP: stamp}
            self.items[resource][key] = merged
            return copy.deepcopy(merged)

    def _new_id(self, resource: str, row: Mapping[str, Any]) -> Any:
        number = next(self._ids)
        if resource == "hubOrganizations":
            return f"CDRM_{number % 100000}"
        if resource.endswith("Costs"):  # a hash key the client must not build [UPC]
            return hashlib.sha1(f"{resource}:{number}".encode()).hexdigest().upper()
        return number

    def remove(self, resource: str, key: str) -> None:
        with self.lock:
            previous = self.items[resource].pop(str(key))
            if self._journal is not None:
                self._journal.append((resource, str(key), previous))

    def all(self, resource: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(r) for r in self.items[resource].values()]

    def api_calls(self, method: str | None = None, prefix: str = "/") -> int:
        with self.lock:
            return sum(1 for m, p, _s in self.calls
                       if p.startswith(prefix) and (method is None or m == method))

    # -- what people do in Fusion -------------------------------------------------------
    def import_costs(self) -> int:
        """"Import and Process Cost Transactions": every unprocessed cost becomes
        a project cost (an expenditure item) with a new hash key [PC]."""
        with self.lock:
            moved = list(self.items["unprocessedProjectCosts"].values())
            for row in moved:
                self.remove("unprocessedProjectCosts", row["unprocessedProjectCostsUniqID"])
                item = {k: v for k, v in row.items() if k != "unprocessedProjectCostsUniqID"}
                self.put("projectCosts", {**item, "ExpenditureItemId": next(self._ids)})
            return len(moved)

    def complete_invoice(self, transaction_id: str | int) -> dict[str, Any]:
        """A finance supervisor completes the invoice (``InvoiceStatus``)."""
        with self.lock:
            return self.put("receivablesInvoices", {"CustomerTransactionId": int(transaction_id),
                                                    "InvoiceStatus": "Complete"})

    def receipt(self, transaction_number: str, amount: Decimal | str) -> dict[str, Any]:
        """A standard receipt whose remittance reference names the invoice;
        AutoMatch applies it [ARUN], lowering what the invoice still owes."""
        amount = Decimal(str(amount))
        with self.lock:
            [invoice] = [i for i in self.items["receivablesInvoices"].values()
                         if i["TransactionNumber"] == transaction_number]
            made = self.put("standardReceipts", {
                "ReceiptNumber": f"R-{len(self.items['standardReceipts']) + 1:05d}",
                "Amount": amount, "Currency": invoice["InvoiceCurrencyCode"],
                "ReceiptDate": self.now().date().isoformat(),
                "CustomerAccountNumber": invoice["BillToCustomerNumber"],
                "remittanceReferences": [{"ReferenceNumber": transaction_number,
                                          "ReferenceAmount": amount}]})
            self.put("receivablesInvoices", {
                "CustomerTransactionId": invoice["CustomerTransactionId"],
                "InvoiceBalanceAmount": invoice["InvoiceBalanceAmount"] - amount})
            return made

    # -- the API's door: Basic auth, record of the call, error bodies ----------------------
    def _api(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def door(request: Request) -> Response:
            if request.params.get("version", VERSIONS[0]) not in VERSIONS:
                response = self._error(404, f"Version {request.params['version']} is not "
                                       "supported.")
            elif not self._authorised(request.headers.get("authorization", "")):
                response = Response(401, b"", {"WWW-Authenticate": 'Basic realm="fusion"',
                                               "Content-Type": "text/plain"})
            else:
                try:
                    response = handler(request)
                except Refused as exc:
                    response = self._error(exc.status, str(exc), exc.code)
                except QueryError as exc:
                    response = self._error(400, str(exc))
            with self.lock:
                self.calls.append((request.method, request.path, response.status))
            return response
        return door

    def _authorised(self, header: str) -> bool:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return header == f"Basic {expected}"

    def _error(self, status: int, message: str, code: str = "") -> Response:
        """Fusion answers most 4xx with the message as plain text; the
        framework's JSON (``o:errorDetails``) is the other reading."""
        if self.error_format == "json":
            return Response(status, {"title": "Bad Request" if status == 400 else "Error",
                                     "status": str(status), "o:errorDetails": [
                                         {"detail": message, "o:errorCode": code or str(status)}]},
                            {"Content-Type": ERROR_JSON})
        return Response(status, message.encode(), {"Content-Type": "text/plain"})

    def _resource(self, request: Request) -> str:
        name = request.params["resource"]
        api = request.path.split("/")[1]
        if name not in RESOURCES or RESOURCES[name].api != api:
            raise Refused(404, f"The resource {name} was not found.")
        return name

    # -- reads -----------------------------------------------------------------------------
    def _get_item(self, request: Request) -> Response:
        name = self._resource(request)
        with self.lock:
            row = self.items[name].get(request.params["id"])
            if row is None:
                raise Refused(404, f"The item {request.params['id']} of {name} was not found.")
            return Response(200, dumps(self._shaped(name, row, request)).encode())

    def _shaped(self, name: str, row: Mapping[str, Any], request: Request) -> dict[str, Any]:
        """An item as answered: child collections only when expanded."""
        children = {"receivablesInvoices": "receivablesInvoiceLines",
                    "standardReceipts": "remittanceReferences"}
        expand = {e.strip() for e in (request.arg("expand") or "").split(",")}
        child = children.get(name)
        if child is None or child in expand or "all" in expand:
            return dict(row)
        return {k: v for k, v in row.items() if k != child}

    def _get_collection(self, request: Request) -> Response:
        name = self._resource(request)
        try:
            limit = int(request.arg("limit") or self.default_limit)
            offset = int(request.arg("offset") or 0)
        except ValueError:
            raise Refused(400, "limit and offset must be whole numbers.") from None
        limit = max(1, min(limit, self.max_limit))  # capped silently [KL, 3p]
        predicate = parse_q(request.arg("q"))
        with self.lock:
            rows: list[Mapping[str, Any]] = [r for r in self.items[name].values()
                                             if predicate(r)]
            rows = ordered(rows, request.arg("orderBy"), (RESOURCES[name].key,))
            page = [self._shaped(name, r, request) for r in rows[offset:offset + limit]]
        more = offset + len(page) < len(rows)
        if offset > 0 and not self.has_more_after_offset:
            more = False  # Oracle Doc ID 2728432.1 as [KL] cites it (3p)
        body: dict[str, Any] = {"items": page, "count": len(page), "hasMore": more,
                                "limit": limit, "offset": offset,
                                "links": [{"rel": "self", "href": f"{self.url}{request.path}",
                                           "name": name, "kind": "collection"}]}
        if request.arg("totalResults") == "true":
            body["totalResults"] = len(rows)
        return Response(200, dumps(body).encode(), {"Content-Type": COLLECTION})

    # -- writes ----------------------------------------------------------------------------
    def _post(self, request: Request) -> Response:
        name = self._resource(request)
        upsert = request.headers.get("upsert-mode", "false").lower() == "true"
        status, row = self._create(name, self._body(request.body), upsert=upsert)
        return Response(status, dumps(row).encode(), {"Content-Type": ITEM})

    def _patch(self, request: Request) -> Response:
        name = self._resource(request)
        row = self._update(name, request.params["id"], self._body(request.body))
        return Response(200, dumps(row).encode(), {"Content-Type": ITEM})

    @staticmethod
    def _body(raw: bytes) -> dict[str, Any]:
        try:
            # Its own parse, not the hub's loader: a client that reads floats
            # must not be met by an emulator that stores them.
            body = json.loads(raw.decode() or "{}", parse_float=Decimal)
        except ValueError:
            raise Refused(400, "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise Refused(400, "The request body must be a JSON object.")
        return body

    def _create(self, name: str, body: dict[str, Any], *, upsert: bool = False
                ) -> tuple[int, dict[str, Any]]:
        if name not in CREATABLE:
            raise Refused(405, f"Invalid operation create for the resource {name}.")
        spec = RESOURCES[name]
        with self.lock:
            if spec.number is not None and body.get(spec.number) not in (None, ""):
                existing = [k for k, r in self.items[name].items()
                            if r.get(spec.number) == body[spec.number]]
                if existing and upsert and self.honour_upsert_mode:
                    return 200, self._update(name, existing[0], body)
                if existing:  # a party or project number is unique in Fusion
                    raise Refused(400, f"The value {body[spec.number]} of {spec.number} "
                                  "already exists.", "FND-2729")
            self._validate(name, body)
            if name == "receivablesInvoices":
                body = self._priced(body)
            # An id Fusion assigns is never taken from the payload; a party number may be.
            made = self.put(name, {k: v for k, v in body.items()
                                   if k != spec.key or spec.key == spec.number})
            if name == "unprocessedProjectCosts" and self.import_on_create:
                self.import_costs()
            return 201, made

    def _update(self, name: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        spec = RESOURCES[name]
        with self.lock:
            existing = self.items[name].get(str(key))
            if existing is None:
                raise Refused(404, f"The item {key} of {name} was not found.")
            if name == "receivablesInvoices" and body.get("InvoiceStatus") not in \
                    (None, "Complete", "Incomplete"):
                raise Refused(400, f"The invoice status {body['InvoiceStatus']} is not valid.")
            return self.put(name, {**body, spec.key: existing[spec.key]})

    def _validate(self, name: str, row: Mapping[str, Any]) -> None:
        problems = [f"The attribute {f} is required." for f in RESOURCES[name].required
                    if row.get(f) in (None, "")]
        if name == "unprocessedProjectCosts":
            problems += self._cost_problems(row)
        if name == "receivablesInvoices":
            problems += self._invoice_problems(row)
        if problems:
            raise Refused(400, " ".join(problems))

    def _cost_problems(self, row: Mapping[str, Any]) -> list[str]:
        problems = []
        documents = company.COST_SOURCES.get(str(row.get("TransactionSource")))
        if documents is None:
            problems.append(f"The transaction source {row.get('TransactionSource')} is not valid.")
        elif row.get("DocumentEntry") not in documents.get(str(row.get("Document")), ()):
            problems.append(f"The document {row.get('Document')} and document entry "
                            f"{row.get('DocumentEntry')} are not valid for the source.")
        if not any(p.get("ProjectNumber") == row.get("ProjectNumber")
                   for p in self.items["projects"].values()):
            problems.append(f"The project number {row.get('ProjectNumber')} is not valid.")
        if row.get("ExpenditureType") not in company.EXPENDITURE_TYPES:
            problems.append(f"The expenditure type {row.get('ExpenditureType')} is not valid.")
        reference = row.get("OriginalTransactionReference")
        if self.unique_cost_references and reference and any(
                c.get("OriginalTransactionReference") == reference
                and c.get("TransactionSource") == row.get("TransactionSource")
                for kind in ("unprocessedProjectCosts", "projectCosts")
                for c in self.items[kind].values()):
            problems.append(f"The original transaction reference {reference} already exists "
                            "for this transaction source.")
        return problems

    def _invoice_problems(self, row: Mapping[str, Any]) -> list[str]:
        problems = []
        if not any(o.get("PartyNumber") == row.get("BillToCustomerNumber")
                   for o in self.items["hubOrganizations"].values()):
            problems.append(f"The bill-to customer {row.get('BillToCustomerNumber')} is not "
                            "valid.")
        checks = (("BusinessUnit", company.BUSINESS_UNITS),
                  ("TransactionSource", company.INVOICE_SOURCES),
                  ("TransactionType", company.INVOICE_TYPES),
                  ("PaymentTerms", company.PAYMENT_TERMS))
        problems += [f"The value {row.get(f)} of {f} is not valid." for f, known in checks
                     if row.get(f) is not None and row.get(f) not in known]
        lines = row.get("receivablesInvoiceLines") or []
        if not lines:
            problems.append("An invoice needs at least one line.")
        problems += [f"The tax classification {line.get('TaxClassificationCode')} is not valid."
                     for line in lines if line.get("TaxClassificationCode") not in
                     (None, *company.TAX_CLASSIFICATIONS)]
        if row.get("InvoiceStatus") not in (None, "Complete", "Incomplete"):
            problems.append(f"The invoice status {row.get('InvoiceStatus')} is not valid.")
        number = row.get("TransactionNumber")
        if self.unique_transaction_numbers and number and any(
                i.get("TransactionNumber") == number
                and i.get("TransactionSource") == row.get("TransactionSource")
                for i in self.items["receivablesInvoices"].values()):
            problems.append(f"The transaction number {number} already exists for this "
                            "transaction source.")
        return problems

    @staticmethod
    def _priced(body: dict[str, Any]) -> dict[str, Any]:
        lines = [dict(line) for line in body.get("receivablesInvoiceLines") or []]
        total = sum(((Decimal(str(line.get("Quantity") or 0))
                      * Decimal(str(line.get("UnitSellingPrice") or 0))).quantize(Decimal("0.01"))
                     for line in lines), Decimal(0))
        return {**body, "receivablesInvoiceLines": lines,
                "InvoiceStatus": body.get("InvoiceStatus") or "Incomplete",
                "EnteredAmount": total, "InvoiceBalanceAmount": total}

    # -- batch -------------------------------------------------------------------------------
    def _batch(self, request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip()
        if media not in self.batch_types:
            raise Refused(415, f"The media type {media} is not supported for a batch.")
        parts = self._body(request.body).get("parts")
        if not isinstance(parts, list) or not parts:
            raise Refused(400, "A batch request needs parts.")
        api = request.path.split("/")[1]
        with self.lock:
            self.batches.append(len(parts))
            self._journal = []
            try:
                done, failed = self._run_parts(api, parts)
                if failed:
                    self._rollback(self._journal)
            finally:
                self._journal = None
        if failed:  # all or none: only the failing parts are answered [BATCH]
            return Response(400, dumps({"parts": failed}).encode())
        return Response(200, dumps({"parts": done}).encode())

    def _run_parts(self, api: str, parts: list[Any]
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        done: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for part in parts:
            part = part if isinstance(part, dict) else {}
            try:
                payload = self._part(api, part)
            except (Refused, QueryError) as exc:
                failed.append({**{k: part.get(k) for k in ("id", "path", "operation")},
                               "exception": {"detail": str(exc), "o:errorCode":
                                             getattr(exc, "code", "") or "400"}})
                continue
            done.append({**{k: part.get(k) for k in ("id", "path", "operation")},
                         "payload": payload})
        return done, failed

    def _part(self, api: str, part: Mapping[str, Any]) -> dict[str, Any]:
        segments = [s for s in str(part.get("path") or "").split("/") if s]
        if len(segments) < 2 or segments[0] not in VERSIONS:
            raise Refused(400, f"The part path {part.get('path')} is not valid.")
        name = segments[1]
        if name not in RESOURCES or RESOURCES[name].api != api:
            raise Refused(404, f"The resource {name} was not found.")
        operation = part.get("operation")
        given = part.get("payload")
        payload: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
        if operation == "create" and len(segments) == 2:
            return self._create(name, dict(payload))[1]
        if operation == "update" and len(segments) == 3:
            return self._update(name, segments[2], dict(payload))
        if operation == "get" and len(segments) == 3 and segments[2] in self.items[name]:
            return copy.deepcopy(self.items[name][segments[2]])
        raise Refused(400, f"Invalid operation {operation} for the specified resource.")

    def _rollback(self, journal: list[tuple[str, str, dict[str, Any] | None]]) -> None:
        for resource, key, previous in reversed(journal):
            if previous is None:
                self.items[resource].pop(key, None)
            else:
                self.items[resource][key] = previous

