"""A Sage Intacct company on 127.0.0.1 behind the XML gateway
(``POST /ia/xml/xmlgw.phtml``; docs/connectors/sage-intacct.md): the Web Services sender
checked in ``<control>``; ``getAPISession`` from a company user's login,
scoped to an entity by ``locationid``; many functions to a request, each
answered in its own ``<result>`` (a failing one fails alone); ``uniqueid``
with function ``controlid``s remembered once completed; ``create``/``update``
of ``CUSTOMER``, ``PROJECT`` and ``TIMESHEET`` (with its entries,
``TIMESHEETENTRY``), the legacy ``create_invoice``, ``query`` and
``readByQuery``; throttling answered as "API rate limit exceeded" inside an
HTTP 200 or as a 429; and the shared fault injection, matched against the
function a request runs (``/ia/xml/xmlgw.phtml/create``).

Whether Intacct refuses a replayed ``controlid`` or runs it again is
``uniqueid_replay`` ("refuse", the documented behaviour, or "ignore"), so
the tests can hold the connector to both. The REST API (``/ia/api/v1``,
``emulator/rest.py``) serves the same records. What it leaves out is listed
in docs/connectors/sage-intacct.md."""

from __future__ import annotations

import re
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from billbridge.connectors.sage_intacct.client import (
    GATEWAY_PATH,
    INVALID_SENDER,
    RATE_LIMIT_TEXT,
    REPLAYED,
    fill,
    record_of,
)
from billbridge.connectors.sage_intacct.emulator.company import EMPLOYEES, ENTITIES
from billbridge.connectors.sage_intacct.emulator.query import (
    QueryError,
    condition,
    order,
    read_by_query,
)
from billbridge.connectors.sage_intacct.emulator.rest import RestApi
from billbridge.emulation.limits import admit
from billbridge.emulation.server import EmulatorServer, Request, Response

THROTTLE_CODE = "GW-0010"  # the code a third-party source gives Intacct's 429 [GW10]
FIRST_FUNCTION = re.compile(rb"<function[^>]*>\s*<(\w+)")
KEYS = {"CUSTOMER": "CUSTOMERID", "PROJECT": "PROJECTID"}
MAX_QUERY = 2000


class Refused(Exception):
    """A function Intacct refuses: its error number and description2."""

    def __init__(self, errorno: str, message: str) -> None:
        super().__init__(message)
        self.errorno = errorno


def _xml(root: ET.Element) -> Response:
    return Response(200, ET.tostring(root, encoding="utf-8", xml_declaration=True),
                    {"Content-Type": "text/xml; charset=UTF-8"})


def _errors(parent: ET.Element, errorno: str, message: str) -> None:
    fill(ET.SubElement(parent, "errormessage"), {"error": {
        "errorno": errorno, "description": "", "description2": message,
        "correction": ""}})


class IntacctEmulator(EmulatorServer):
    """One company. Records live in ``objects[name][RECORDNO]``, each with
    the entity that owns it (``MEGAENTITYID``, empty at the top level)."""

    def __init__(self, *, port: int = 0, sender_id: str = "billbridge",
                 sender_password: str = "sender-secret", company_id: str = "billbridge-co",
                 user_id: str = "api-user", user_password: str = "user-secret",
                 uniqueid_replay: str = "refuse", requests_limit: int | None = None,
                 window_seconds: float = 1.0, throttle_status: int = 200,
                 idempotency_replay: str = "replay", token_seconds: float = 3600.0,
                 client_id: str = "billbridge-client", client_secret: str = "client-secret",
                 clock: Callable[[], float] | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        super().__init__(port=port)
        if uniqueid_replay not in ("refuse", "ignore"):
            raise ValueError("uniqueid_replay is refuse or ignore")
        self.sender = (sender_id, sender_password)
        self.login = (user_id, company_id, user_password)
        self.uniqueid_replay = uniqueid_replay
        self.requests_limit, self.window_seconds = requests_limit, window_seconds
        self.throttle_status = throttle_status  # 200 (XML error) or 429 (GW-0010)
        self.clock = clock or time.monotonic
        self.now = now or (lambda: datetime.now(UTC))
        self.objects: dict[str, dict[int, dict[str, Any]]] = {}
        self.sessions: dict[str, str] = {}  # session id → its entity
        self.completed: set[str] = set()  # function controlids run under uniqueid
        self.calls: Counter[str] = Counter()  # requests by their first function
        self.functions: Counter[str] = Counter()
        self.throttle_next = 0
        self._window: deque[float] = deque()
        self._next = 100
        self._numbering = threading.Lock()
        for employee, name in EMPLOYEES.items():
            self.add("EMPLOYEE", {"EMPLOYEEID": employee, "PERSONALINFO.CONTACTNAME": name})
        self.route("POST", GATEWAY_PATH, self._gateway)
        self.rest = RestApi(self, idempotency_replay=idempotency_replay,
                            token_seconds=token_seconds, client=(client_id, client_secret))

    # -- test and demo helpers -----------------------------------------------------------
    def add(self, obj: str, fields: dict[str, Any], location: str = "") -> dict[str, Any]:
        with self._numbering:
            self._next += 1
            number = self._next
        stamp = self.now().strftime("%m/%d/%Y %H:%M:%S")
        row = {"RECORDNO": str(number), **fields, "MEGAENTITYID": location,
               "WHENCREATED": stamp, "WHENMODIFIED": stamp}
        with self.lock:
            self.objects.setdefault(obj, {})[number] = row
        return row

    def all(self, obj: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.objects.get(obj, {}).values()]

    def remove(self, obj: str, recordno: str) -> None:
        with self.lock:
            self.objects.get(obj, {}).pop(int(recordno), None)

    def pay(self, recordno: str, amount: Decimal) -> None:
        """The customer pays ``amount`` on the AR invoice ``recordno``: an
        ``ARPYMT`` applied to it (as ``create_arpayment`` records one)."""
        with self.lock:
            invoice = self.objects["ARINVOICE"][int(recordno)]
            self.receive(str(invoice["CUSTOMERID"]), [(recordno, amount)],
                         str(invoice["MEGAENTITYID"]))

    def receive(self, customer: str, items: list[tuple[str, Decimal]],
                location: str) -> dict[str, Any]:
        """An ``ARPYMT`` from ``customer`` applied to AR invoices (record
        number, amount): each invoice's paid total and state changed."""
        with self.lock:
            invoices = []
            for recordno, _amount in items:
                found = [i for i in self._visible("ARINVOICE", location)
                         if i["RECORDNO"] == recordno and i["CUSTOMERID"] == customer]
                if not found:
                    raise Refused("BL03000018", f"Invalid invoice {recordno} for {customer}")
                invoices.append(found[0])
            for invoice, (_recordno, amount) in zip(invoices, items, strict=True):
                paid = Decimal(invoice["TOTALPAID"]) + amount
                total = Decimal(invoice["TOTALENTERED"])
                invoice.update(TOTALPAID=str(paid), TOTALDUE=str(total - paid),
                               STATE="Paid" if paid >= total else "Partially Paid",
                               WHENMODIFIED=self.now().strftime("%m/%d/%Y %H:%M:%S"))
        return self.add("ARPYMT", {
            "CUSTOMERID": customer, "TOTALENTERED": str(sum((a for _r, a in items), Decimal(0))),
            "STATE": "Complete", "RECORDKEY": items[0][0] if len(items) == 1 else "",
            "ITEMS": [{"invoicekey": r, "amount": str(a)} for r, a in items]}, location)

    def api_calls(self, function: str | None = None) -> int:
        return sum(self.calls.values()) if function is None else self.calls[function]

    def fault_path(self, request: Request) -> str:
        if request.path != GATEWAY_PATH:
            return request.path  # the REST API: its own paths
        found = FIRST_FUNCTION.search(request.body)
        return f"{GATEWAY_PATH}/{found.group(1).decode() if found else ''}"

    # -- the gateway -------------------------------------------------------------------
    def _gateway(self, request: Request) -> Response:
        self.calls[self.fault_path(request).rpartition("/")[2]] += 1
        try:
            root = ET.fromstring(request.body)
        except ET.ParseError as exc:
            return self._control_failure("XL03000001", f"XML parse error: {exc}", None)
        control = root.find("control")
        if control is None or (control.findtext("senderid"), control.findtext("password")) \
                != self.sender:
            return self._control_failure(INVALID_SENDER, "Invalid Web Services Authorization",
                                         control)
        if self._throttled():
            if self.throttle_status == 429:
                return Response(429, {"error": {"code": THROTTLE_CODE,
                                                "message": RATE_LIMIT_TEXT}})
            return self._control_failure(THROTTLE_CODE, RATE_LIMIT_TEXT, control)
        response = ET.Element("response")
        answer = ET.SubElement(response, "control")
        fill(answer, {"status": "success", "senderid": self.sender[0],
                      "controlid": control.findtext("controlid") or "",
                      "uniqueid": control.findtext("uniqueid") or "false",
                      "dtdversion": "3.0"})
        operation = ET.SubElement(response, "operation")
        location = self._authenticate(root.find("operation/authentication"), operation)
        if location is None:
            return _xml(response)
        unique = (control.findtext("uniqueid") or "").strip().lower() == "true"
        with self.lock:
            for function in root.findall("operation/content/function"):
                operation.append(self._run(function, location, unique))
        return _xml(response)

    def _throttled(self) -> bool:
        with self.lock:
            if self.throttle_next > 0:
                self.throttle_next -= 1
                return True
        if self.requests_limit is None:
            return False
        return admit(self._window, self.requests_limit, self.window_seconds,
                     self.clock()) is not None

    def _control_failure(self, errorno: str, message: str,
                         control: ET.Element | None) -> Response:
        response = ET.Element("response")
        fill(ET.SubElement(response, "control"), {
            "status": "failure", "senderid": control.findtext("senderid") if control is not None
            else "", "controlid": control.findtext("controlid") if control is not None else "",
            "uniqueid": "false", "dtdversion": "3.0"})
        _errors(response, errorno, message)
        return _xml(response)

    def _authenticate(self, auth: ET.Element | None, operation: ET.Element) -> str | None:
        """The session's entity, or None after writing the failure."""
        node = ET.SubElement(operation, "authentication")
        location: str | None = None
        if auth is not None and auth.findtext("sessionid"):
            location = self.sessions.get(auth.findtext("sessionid") or "")
        elif auth is not None and auth.find("login") is not None:
            login = auth.find("login")
            assert login is not None
            given = (login.findtext("userid"), login.findtext("companyid"),
                     login.findtext("password"))
            place = (login.findtext("locationid") or "").strip()
            if given == self.login and (not place or place in ENTITIES):
                location = place
        if location is None:
            fill(node, {"status": "failure", "userid": self.login[0],
                        "companyid": self.login[1]})
            _errors(operation, "XL03000006", "Sign-in information is incorrect or the "
                    "session has expired")
            return None
        fill(node, {"status": "success", "userid": self.login[0], "companyid": self.login[1],
                    "locationid": location,
                    "sessiontimestamp": self.now().isoformat(timespec="seconds")})
        return location

    def _run(self, function: ET.Element, location: str, unique: bool) -> ET.Element:
        controlid = function.get("controlid") or ""
        body = function[0] if len(function) else ET.Element("missing")
        self.functions[body.tag] += 1
        result = ET.Element("result")
        outcome: ET.Element | None = None
        try:
            if unique and controlid in self.completed and self.uniqueid_replay == "refuse":
                raise Refused(REPLAYED, f"A request with control id {controlid} was "
                              "previously executed and completed")
            outcome = self._function(body, location)
            if unique:
                self.completed.add(controlid)
            fill(result, {"status": "success", "function": body.tag, "controlid": controlid})
        except (Refused, QueryError) as exc:
            errorno = exc.errorno if isinstance(exc, Refused) else "PL04000055"
            fill(result, {"status": "failure", "function": body.tag, "controlid": controlid})
            _errors(result, errorno, str(exc))
        if outcome is not None:
            result.append(outcome)
        return result

    def _function(self, body: ET.Element, location: str) -> ET.Element | None:
        handlers: dict[str, Callable[[ET.Element, str], ET.Element | None]] = {
            "getAPISession": self._session, "create": self._create, "update": self._update,
            "create_invoice": self._create_invoice, "create_arpayment": self._arpayment,
            "query": self._query,
            "readByQuery": self._read_by_query}
        handler = handlers.get(body.tag)
        if handler is None:
            raise Refused("XL03000003", f"the function {body.tag} is not supported here")
        return handler(body, location)

    def _session(self, _body: ET.Element, location: str) -> ET.Element:
        session = secrets.token_urlsafe(18)
        self.sessions[session] = location
        data = ET.Element("data")
        fill(ET.SubElement(data, "api"), {"sessionid": session,
                                          "endpoint": f"{self.url}{GATEWAY_PATH}",
                                          "locationid": location})
        return data

    # -- reads ----------------------------------------------------------------------------
    def _visible(self, obj: str, location: str) -> list[dict[str, Any]]:
        """An entity's session sees its own records and the top level's; the
        top level sees every entity's."""
        return [r for r in self.objects.get(obj, {}).values()
                if not location or r["MEGAENTITYID"] in ("", location)]

    def _listing(self, tag: str, rows: list[dict[str, Any]], fields: list[str] | None,
                 offset: int, size: int, **extra: str) -> ET.Element:
        page = rows[offset:offset + size]
        data = ET.Element("data", {"listtype": tag, "totalcount": str(len(rows)),
                                   "offset": str(offset), "count": str(len(page)),
                                   "numremaining": str(max(0, len(rows) - offset - len(page))),
                                   **extra})
        for row in page:
            chosen = row if not fields else {f: row.get(f, "") for f in fields}
            fill(ET.SubElement(data, tag), chosen)
        return data

    def _query(self, body: ET.Element, location: str) -> ET.Element:
        obj = (body.findtext("object") or "").upper()
        if obj not in self.objects and obj not in ("CUSTOMER", "PROJECT", "TIMESHEET",
                                                   "TIMESHEETENTRY", "ARINVOICE", "ARPYMT"):
            raise QueryError(f"unknown object {obj}")
        fields = [f.text or "" for f in body.findall("select/field")]
        if not fields:
            raise QueryError("a query selects at least one field")
        rows = self._visible(obj, location)
        node = body.find("filter")
        if node is not None and len(node):
            keep = condition(node[0])
            rows = [r for r in rows if keep(r)]
        rows = order(rows, body.find("orderby"))
        size = min(int(body.findtext("pagesize") or 100), MAX_QUERY)
        return self._listing(obj, rows, fields, int(body.findtext("offset") or 0), size)

    def _read_by_query(self, body: ET.Element, location: str) -> ET.Element:
        obj = (body.findtext("object") or "").upper()
        keep = read_by_query(body.findtext("query"))
        rows = order([r for r in self._visible(obj, location) if keep(r)], None)
        fields = body.findtext("fields") or "*"
        chosen = None if fields.strip() == "*" else [f.strip() for f in fields.split(",")]
        size = min(int(body.findtext("pagesize") or 100), 1000)
        return self._listing(obj.lower(), rows, chosen, 0, size, resultId="")

    # -- writes ---------------------------------------------------------------------------
    def create(self, obj: str, fields: dict[str, Any], location: str) -> dict[str, Any]:
        """A ``CUSTOMER``, ``PROJECT`` or ``TIMESHEET`` (with its entries)
        created in ``location``, as either API asks; ``Refused`` otherwise."""
        if obj in KEYS:
            key = KEYS[obj]
            if not fields.get(key):
                raise Refused("BL34000061", f"{key} is required")
            if any(r.get(key) == fields[key] for r in self.objects.get(obj, {}).values()):
                raise Refused("BL01001973", f"Another {obj.lower()} with the given value(s) "
                              f"{fields[key]} already exists")
            if obj == "PROJECT" and fields.get("CUSTOMERID") and not any(
                    c.get("CUSTOMERID") == fields["CUSTOMERID"]
                    for c in self._visible("CUSTOMER", location)):
                raise Refused("BL03000018", f"Invalid customer {fields['CUSTOMERID']}")
            return self.add(obj, fields, location)
        if obj == "TIMESHEET":
            return self._timesheet(fields, location)
        raise Refused("BL34000061", f"create of {obj} is not supported here")

    def _create(self, body: ET.Element, location: str) -> ET.Element:
        if len(body) != 1:
            raise Refused("BL34000061", "create takes one object")
        node = body[0]
        row = self.create(node.tag, record_of(node), location)
        data = ET.Element("data", listtype="objects", count="1")
        answer = {"RECORDNO": row["RECORDNO"]}
        if node.tag in KEYS:
            answer[KEYS[node.tag]] = row[KEYS[node.tag]]
        fill(ET.SubElement(data, node.tag.lower()), answer)
        return data

    def _update(self, body: ET.Element, location: str) -> ET.Element:
        node = body[0] if len(body) == 1 else ET.Element("missing")
        key = KEYS.get(node.tag)
        if key is None:
            raise Refused("BL34000061", f"update of {node.tag} is not supported here")
        fields = record_of(node)
        rows = [r for r in self._visible(node.tag, location) if r.get(key) == fields.get(key)]
        if not rows:
            raise Refused("BL01001973", f"no {node.tag.lower()} {fields.get(key)} to update")
        self.change(rows[0], fields)
        data = ET.Element("data", listtype="objects", count="1")
        fill(ET.SubElement(data, node.tag.lower()), {"RECORDNO": rows[0]["RECORDNO"],
                                                     key: rows[0][key]})
        return data

    def change(self, row: dict[str, Any], fields: dict[str, Any]) -> None:
        """An update: the fields given, merged into nested ones, and a new stamp."""
        for name, value in fields.items():
            if isinstance(value, dict) and isinstance(row.get(name), dict):
                self.change(row[name], value)
            else:
                row[name] = value
        row["WHENMODIFIED"] = self.now().strftime("%m/%d/%Y %H:%M:%S")

    def _timesheet(self, fields: dict[str, Any], location: str) -> dict[str, Any]:
        employee = fields.get("EMPLOYEEID")
        if not any(e.get("EMPLOYEEID") == employee for e in self.all("EMPLOYEE")):
            raise Refused("BL03000018", f"Invalid employee {employee}")
        entries = fields.pop("TIMESHEETENTRIES", {})
        lines = entries.get("TIMESHEETENTRY") if isinstance(entries, dict) else None
        if not isinstance(lines, dict):
            raise Refused("BL34000061", "a timesheet needs its TIMESHEETENTRIES")
        projects = {p.get("PROJECTID") for p in self._visible("PROJECT", location)}
        if lines.get("PROJECTID") not in projects:
            raise Refused("BL03000018", f"Invalid project {lines.get('PROJECTID')}")
        try:
            Decimal(str(lines.get("QTY")))
        except InvalidOperation:
            raise Refused("BL34000061", f"QTY {lines.get('QTY')!r} is not a number") from None
        sheet = self.add("TIMESHEET", {**fields, "STATE": fields.get("STATE") or "Draft"},
                         location)
        self.add("TIMESHEETENTRY", {**lines, "TIMESHEETKEY": sheet["RECORDNO"],
                                    "EMPLOYEEID": employee}, location)
        return sheet

    def _create_invoice(self, body: ET.Element, location: str) -> ET.Element:
        row = self.invoice(record_of(body), [record_of(i) for i in
                                             body.findall("invoiceitems/lineitem")], location)
        node = ET.Element("key")
        node.text = row["RECORDNO"]
        return node

    def _arpayment(self, body: ET.Element, location: str) -> ET.Element:
        """The legacy ``create_arpayment`` [IPHP]: ``customerid``,
        ``paymentamount`` and the ``arpaymentitem``s (``invoicekey``,
        ``amount``) it is applied to, which must add up to it."""
        try:
            items = [(i.findtext("invoicekey") or "", Decimal(i.findtext("amount") or ""))
                     for i in body.findall("arpaymentitem")]
            amount = Decimal(body.findtext("paymentamount") or "")
        except InvalidOperation:
            raise Refused("BL34000061", "an amount is not a number") from None
        if not items or sum((a for _r, a in items), Decimal(0)) != amount:
            raise Refused("BL34000061", "the arpaymentitems must add up to paymentamount")
        row = self.receive(body.findtext("customerid") or "", items, location)
        node = ET.Element("key")
        node.text = row["RECORDNO"]
        return node

    def invoice(self, fields: dict[str, Any], items: list[dict[str, Any]],
                location: str) -> dict[str, Any]:
        """An AR invoice from ``create_invoice``'s fields and line items, posted."""
        customer = fields.get("customerid")
        if not any(c.get("CUSTOMERID") == customer for c in self._visible("CUSTOMER", location)):
            raise Refused("BL03000018", f"Invalid customer {customer}")
        if not items:
            raise Refused("BL34000061", "an invoice needs invoiceitems")
        try:
            total = sum((Decimal(str(i.get("amount") or "")) for i in items), Decimal(0))
        except InvalidOperation:
            raise Refused("BL34000061", "a line item amount is not a number") from None
        return self.add("ARINVOICE", {
            "RECORDID": fields.get("invoiceno") or "", "CUSTOMERID": customer,
            "DESCRIPTION": fields.get("description") or "", "STATE": "Posted",
            "CURRENCY": fields.get("currency") or "USD", "TOTALENTERED": str(total),
            "TOTALPAID": "0", "TOTALDUE": str(total),
            "ITEMS": items}, location)
