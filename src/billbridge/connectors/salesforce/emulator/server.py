"""A Salesforce org emulator: OAuth refresh, SOQL queries with query locators,
sObject reads, updates and upserts by external id, sObject Collections
(upsert by external id, update by id; a deleted record answers
``ENTITY_IS_DELETED``), the daily API allocation (``Sforce-Limit-Info``, 403
``REQUEST_LIMIT_EXCEEDED``), error arrays, and Outbound Messages sent to a URL.
It serves TLS when given a certificate, because ``simple-salesforce`` only
builds https URLs.

SOQL is understood simply: ``SELECT f1, Rel.f2 FROM Object [WHERE cond AND
cond …] [ORDER BY f [ASC|DESC], …] [LIMIT n]`` with conditions
``field (=|!=|<|<=|>|>=) literal`` and ``field IN ('a', 'b')``; literals are
'strings', true/false/null, numbers, dates and datetimes.
"""

from __future__ import annotations

import itertools
import re
import secrets
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx

from billbridge.connectors.salesforce.mapping import format_stamp, parse_stamp
from billbridge.connectors.salesforce.webhooks import outbound_message_xml
from billbridge.emulation.server import DecimalResponse, EmulatorServer, Request, Response

PREFIXES = {"Account": "001", "Opportunity": "006", "Contact": "003"}
MAX_COLLECTION = 200
MAX_BATCH = 2000

_SOQL = re.compile(r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)"
                   r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+(?P<order>.+?))?"
                   r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$", re.IGNORECASE | re.DOTALL)
_COND = re.compile(r"^\s*(?P<field>[\w.]+)\s*(?P<op>>=|<=|!=|=|>|<|\bIN\b)\s*(?P<value>.+?)\s*$",
                   re.IGNORECASE | re.DOTALL)
# The emulator's second API shape, for an upgrade preview to have something to
# show (docs/connectors/salesforce.md "API versions"): from COUNTRY_CODE_FROM on,
# an Account answers its country as ``BillingCountryCode`` (an ISO 3166 code,
# as orgs with State and Country picklists do) instead of ``BillingCountry``.
# A modelled difference, not a claim about a given Salesforce release.
COUNTRY_CODE_FROM = 63
COUNTRY_CODES = {"united states": "US", "germany": "DE", "united kingdom": "GB",
                 "france": "FR", "netherlands": "NL", "japan": "JP"}


def version_number(version: str) -> float:
    try:
        return float(version.lstrip("v"))
    except ValueError:
        return 0.0


def country_code_shape(sobject: str, row: dict[str, Any]) -> dict[str, Any]:
    if sobject == "Account" and "BillingCountry" in row:
        country = row.pop("BillingCountry")
        row["BillingCountryCode"] = None if country is None else COUNTRY_CODES.get(
            str(country).lower(), str(country)[:2].upper())
    return row


_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:?\d\d)$")


def errors(status: int, code: str, message: str, fields: Sequence[str] = ()) -> Response:
    return Response(status, [{"message": message, "errorCode": code, "fields": list(fields)}])


class SoqlError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _literal(text: str) -> Any:
    text = text.strip()
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if _DATETIME.match(text):
        return parse_stamp(text)
    try:
        return float(text)
    except ValueError:
        pass
    if re.match(r"^\d{4}-\d\d-\d\d$", text):
        return text
    raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text}'")


def _split_list(text: str) -> list[Any]:
    inner = text.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise SoqlError("MALFORMED_QUERY", f"IN needs a parenthesised list, got {text!r}")
    parts = re.findall(r"'(?:[^'\\]|\\.)*'|[^,\s][^,]*", inner[1:-1])
    return [_literal(p) for p in parts]


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(right, datetime):
        left = parse_stamp(left)
    elif isinstance(right, float) and left is not None:
        left = float(left)
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if left is None or right is None:
        return False
    ordered = {">=": left >= right, "<=": left <= right, ">": left > right, "<": left < right}
    return bool(ordered[op])


class SalesforceEmulator(EmulatorServer):
    """One org. Records live in ``objects[sobject][id]``; every change moves
    ``SystemModstamp`` forward on the emulator's own strictly increasing clock
    unless a stamp is given (to put many records on one instant)."""

    def __init__(self, *, tls: tuple[str, str] | None = None, port: int = 0,
                 org_id: str = "00D5g000000EmUlAAA", api_limit: int = 100_000,
                 page_size: int = MAX_BATCH, client_id: str = "billbridge",
                 client_secret: str = "s3cret", refresh_token: str = "refresh-token",
                 access_token: str = "session-1") -> None:
        super().__init__(port=port, token=None, tls=tls)
        self.org_id = org_id
        self.api_limit = api_limit
        self.api_usage = 0
        self.page_size = page_size
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.valid_tokens: set[str] = {access_token}
        self.token_grants = 0
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.deleted: dict[str, str] = {}  # id → sObject, of records in the recycle bin
        # Every write by id the org applied, as (sObject, id, fields): resends show here.
        self.writes: list[tuple[str, str, dict[str, Any]]] = []
        self.reject_if: Callable[[str, Mapping[str, Any]], tuple[str, str] | None] = \
            lambda sobject, fields: None
        self._locators: dict[str, list[dict[str, Any]]] = {}
        # How a queried row is answered beyond its fields: (sObject, row) → row. A test
        # changes the org's response shape here (a field renamed, added, retyped).
        self.reshape: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
        self._ids = itertools.count(1)
        self._clock = datetime(2026, 3, 1, tzinfo=UTC)
        base = "/services/data/{version}"
        self.route("POST", "/services/oauth2/token", self._token)
        self.route("GET", base + "/query", self._query)
        self.route("GET", base + "/query/", self._query)
        self.route("GET", base + "/query/{locator}", self._query_more)
        self.route("GET", base + "/sobjects/{sobject}/{record_id}", self._get)
        self.route("PATCH", base + "/sobjects/{sobject}/{record_id}", self._update)
        self.route("PATCH", base + "/sobjects/{sobject}/{field}/{value}", self._upsert)
        self.route("PATCH", base + "/composite/sobjects", self._update_collection)
        self.route("PATCH", base + "/composite/sobjects/{sobject}/{field}", self._collection)

    # -- state -------------------------------------------------------------------
    def _tick(self) -> str:
        self._clock = max(self._clock + timedelta(milliseconds=1), datetime.now(UTC))
        return self._stamp(self._clock)

    @staticmethod
    def _stamp(moment: datetime) -> str:
        return format_stamp(moment).replace("Z", "+0000")  # REST spelling

    def _new_id(self, sobject: str) -> str:
        prefix = PREFIXES.get(sobject, "a00")
        return f"{prefix}5g{next(self._ids):010d}AAA"

    def upsert_record(self, sobject: str, fields: Mapping[str, Any], *,
                      modstamp: str | None = None) -> dict[str, Any]:
        """Create or change a record (by ``Id`` when given); returns a copy."""
        with self.lock:
            table = self.objects.setdefault(sobject, {})
            record_id = str(fields.get("Id") or self._new_id(sobject))
            previous = table.get(record_id)
            stamp = self._stamp(parse_stamp(modstamp) or self._clock) if modstamp \
                else self._tick()
            record = {**(previous or {"CreatedDate": stamp}), **fields, "Id": record_id,
                      "SystemModstamp": stamp, "LastModifiedDate": stamp}
            table[record_id] = record
            return dict(record)

    def record(self, sobject: str, record_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.objects[sobject][record_id])

    def seed(self, fixtures: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[str]]:
        """``{"Account": [...], "Opportunity": [...]}``; returns the ids made."""
        made: dict[str, list[str]] = {}
        for sobject, rows in fixtures.items():
            for row in rows:
                stamp = row.get("SystemModstamp")
                fields = {k: v for k, v in row.items() if k != "SystemModstamp"}
                made.setdefault(sobject, []).append(
                    self.upsert_record(sobject, fields, modstamp=stamp)["Id"])
        return made

    def delete(self, sobject: str, record_id: str) -> None:
        """The record goes to the recycle bin: updates of it answer ENTITY_IS_DELETED."""
        with self.lock:
            del self.objects[sobject][record_id]
            self.deleted[record_id] = sobject

    def expire_sessions(self) -> None:
        with self.lock:
            self.valid_tokens.clear()

    def _limit_info(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_usage}/{self.api_limit}"}

    # -- auth, allocation and headers ----------------------------------------------
    def dispatch(self, request: Request, *, drop: Callable[[], None]) -> Response | None:
        if not request.path.startswith("/services/data/"):
            return super().dispatch(request, drop=drop)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.valid_tokens:
            return errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        with self.lock:
            if self.api_usage >= self.api_limit:
                response = errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                response.headers.update(self._limit_info())
                return response
            self.api_usage += 1
        answer = super().dispatch(request, drop=drop)
        if answer is None:
            return None
        answer.headers.update(self._limit_info())
        # Currency fields (a record seeded with Decimal) go out as JSON numbers.
        return DecimalResponse(answer.status, answer.body, answer.headers)

    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return Response(400, {"error": "unsupported_grant_type",
                                  "error_description": "grant type not supported"})
        if form.get("refresh_token") != self.refresh_token or \
                form.get("client_id") != self.client_id or \
                form.get("client_secret") != self.client_secret:
            return Response(400, {"error": "invalid_grant",
                                  "error_description": "expired access/refresh token"})
        token = f"00D!{secrets.token_urlsafe(12)}"
        with self.lock:
            self.valid_tokens.add(token)
            self.token_grants += 1
        return Response(200, {"access_token": token, "instance_url": self.url,
                              "id": f"{self.url}/id/{self.org_id}/0055g0000000001AAA",
                              "token_type": "Bearer", "scope": "api refresh_token",
                              "issued_at": str(int(datetime.now(UTC).timestamp() * 1000)),
                              "signature": "emulated"})

    # -- query ---------------------------------------------------------------------
    def _attributes(self, sobject: str, record_id: str, version: str) -> dict[str, str]:
        return {"type": sobject, "url": f"/services/data/{version}/sobjects/{sobject}/{record_id}"}

    def _field(self, sobject: str, record: Mapping[str, Any], name: str) -> Any:
        if "." not in name:
            return record.get(name)
        relation, _, rest = name.partition(".")
        target = self.objects.get(relation, {}).get(str(record.get(f"{relation}Id")))
        return None if target is None else self._field(relation, target, rest)

    def run_soql(self, soql: str, version: str = "v61.0") -> list[dict[str, Any]]:
        found = _SOQL.match(soql)
        if not found:
            raise SoqlError("MALFORMED_QUERY", f"cannot parse query: {soql[:80]}")
        sobject = found["obj"]
        if sobject not in self.objects and sobject not in PREFIXES:
            raise SoqlError("INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        names = [n.strip() for n in found["fields"].split(",") if n.strip()]
        conditions = []
        for part in re.split(r"\s+AND\s+", found["where"] or "", flags=re.IGNORECASE):
            if not part.strip():
                continue
            cond = _COND.match(part)
            if not cond:
                raise SoqlError("MALFORMED_QUERY", f"cannot parse condition: {part}")
            op = cond["op"].upper()
            value = _split_list(cond["value"]) if op == "IN" else _literal(cond["value"])
            conditions.append((cond["field"], op, value))
        rows = list(self.objects.get(sobject, {}).values())

        def keep(row: Mapping[str, Any]) -> bool:
            for name, op, value in conditions:
                actual = self._field(sobject, row, name)
                if op == "IN":
                    if actual not in value:
                        return False
                elif not _compare(actual, op, value):
                    return False
            return True

        rows = [r for r in rows if keep(r)]
        for term in reversed([t.strip() for t in (found["order"] or "").split(",") if t.strip()]):
            name, _, direction = term.partition(" ")

            def order(row: Mapping[str, Any], name: str = name) -> tuple[bool, str]:
                value = self._field(sobject, row, name)
                return value is None, str(value or "")

            rows.sort(key=order, reverse=direction.strip().upper() == "DESC")
        if found["limit"]:
            rows = rows[: int(found["limit"])]
        return [self._shape(sobject, row, names, version) for row in rows]

    def _shape(self, sobject: str, row: Mapping[str, Any], names: list[str],
               version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": self._attributes(sobject, row["Id"], version)}
        for name in names:
            if "." not in name:
                out[name] = row.get(name)
                continue
            relation, _, rest = name.partition(".")
            target = self.objects.get(relation, {}).get(str(row.get(f"{relation}Id")))
            if target is None:
                out[relation] = None
                continue
            nested = out.get(relation) or {"attributes": self._attributes(
                relation, target["Id"], version)}
            nested[rest] = target.get(rest)
            out[relation] = nested
        return self._versioned(sobject, out, version)

    def _versioned(self, sobject: str, out: dict[str, Any], version: str) -> dict[str, Any]:
        for name, value in list(out.items()):
            if isinstance(value, dict) and name != "attributes":
                out[name] = self._versioned(name, value, version)
        if version_number(version) >= COUNTRY_CODE_FROM:
            out = country_code_shape(sobject, out)
        return self.reshape(sobject, out) if self.reshape is not None else out

    def _page(self, rows: list[dict[str, Any]], start: int, size: int, locator: str,
              version: str) -> Response:
        chunk = rows[start:start + size]
        body: dict[str, Any] = {"totalSize": len(rows), "done": start + size >= len(rows),
                                "records": chunk}
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}-{start + size}"
        return Response(200, body)

    def _batch_size(self, request: Request) -> int:
        options = request.headers.get("sforce-query-options", "")
        found = re.search(r"batchSize=(\d+)", options)
        return max(1, min(MAX_BATCH, int(found.group(1)))) if found else self.page_size

    def _query(self, request: Request) -> Response:
        soql = request.arg("q")
        if not soql:
            return errors(400, "MALFORMED_QUERY", "query parameter q is required")
        version = request.params["version"]
        try:
            with self.lock:
                rows = self.run_soql(soql, version)
        except SoqlError as exc:
            return errors(400, exc.code, str(exc))
        locator = f"01g5g{next(self._ids):010d}AAA"
        with self.lock:
            self._locators[locator] = rows
        return self._page(rows, 0, self._batch_size(request), locator, version)

    def _query_more(self, request: Request) -> Response:
        locator, _, start = request.params["locator"].rpartition("-")
        rows = self._locators.get(locator)
        if rows is None or not start.isdigit():
            return errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(rows, int(start), self._batch_size(request), locator,
                          request.params["version"])

    # -- sObjects ------------------------------------------------------------------
    def _get(self, request: Request) -> Response:
        sobject, record_id = request.params["sobject"], request.params["record_id"]
        with self.lock:
            row = self.objects.get(sobject, {}).get(record_id)
            if row is None:
                return errors(404, "NOT_FOUND", "The requested resource does not exist")
            return Response(200, {"attributes": self._attributes(
                sobject, record_id, request.params["version"]), **row})

    def _update(self, request: Request) -> Response:
        sobject, record_id = request.params["sobject"], request.params["record_id"]
        fields = request.json() or {}
        with self.lock:
            missing = self._missing(sobject, record_id)
            if missing:
                return errors(404, *missing)
            problem = self.reject_if(sobject, fields)
            if problem:
                return errors(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", problem[1], [problem[0]])
            self.upsert_record(sobject, {**fields, "Id": record_id})
            self.writes.append((sobject, record_id, dict(fields)))
        return Response(204, None)

    def _missing(self, sobject: str, record_id: str) -> tuple[str, str] | None:
        """(code, message) when ``record_id`` is no ``sobject`` here."""
        if record_id in self.objects.get(sobject, {}):
            return None
        if self.deleted.get(record_id) == sobject:
            return "ENTITY_IS_DELETED", "entity is deleted"
        return "NOT_FOUND", "The requested resource does not exist"

    def _update_collection(self, request: Request) -> Response:
        """sObject Collections update: records by id, of any type, in order;
        a record that is not there fails alone (``allOrNone`` false)."""
        try:
            body = request.json() or {}
            records = [dict(r) for r in body["records"]]
        except (ValueError, KeyError, TypeError):
            return errors(400, "JSON_PARSER_ERROR", "body must be {allOrNone, records: [...]}")
        if len(records) > MAX_COLLECTION:
            return errors(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more "
                          f"than {MAX_COLLECTION} records into this call")
        for item in records:
            if not isinstance(item.get("attributes"), dict) or not item["attributes"].get("type"):
                return errors(400, "INVALID_TYPE", "every record needs attributes with a type")
        all_or_none = bool(body.get("allOrNone"))
        results: list[dict[str, Any]] = []
        with self.lock:
            for item in records:
                sobject = str(item["attributes"]["type"])
                record_id = str(item.get("id") or item.get("Id") or "")
                fields = {k: v for k, v in item.items() if k not in ("attributes", "id", "Id")}
                missing = ("MISSING_ARGUMENT", "Id not specified in an update call") \
                    if not record_id else self._missing(sobject, record_id)
                problem = self.reject_if(sobject, fields) if missing is None else None
                if missing is None and problem:
                    missing = ("FIELD_CUSTOM_VALIDATION_EXCEPTION", problem[1])
                if missing:
                    results.append({"id": record_id or None, "success": False, "errors": [
                        {"statusCode": missing[0], "message": missing[1],
                         "fields": [problem[0]] if problem else []}]})
                    continue
                if all_or_none and any(not r["success"] for r in results):
                    continue
                self.upsert_record(sobject, {**fields, "Id": record_id})
                self.writes.append((sobject, record_id, fields))
                results.append({"id": record_id, "success": True, "errors": []})
        return Response(200, results)

    def _matching(self, sobject: str, field: str, value: Any) -> list[str]:
        return [rid for rid, row in self.objects.get(sobject, {}).items()
                if row.get(field) is not None and str(row.get(field)) == str(value)]

    def _upsert(self, request: Request) -> Response:
        sobject, field, value = (request.params["sobject"], request.params["field"],
                                 request.params["value"])
        try:
            fields = dict(request.json() or {})
        except ValueError:
            return errors(400, "JSON_PARSER_ERROR", "the request body is not JSON")
        if "Id" in fields or field in fields:
            return errors(400, "INVALID_FIELD", f"Id and {field} are not allowed in the body "
                          "of an upsert by external id", [field])
        with self.lock:
            matches = self._matching(sobject, field, value)
            if len(matches) > 1:
                version = request.params["version"]
                return Response(300, [f"/services/data/{version}/sobjects/{sobject}/{m}"
                                      for m in matches])
            problem = self.reject_if(sobject, fields)
            if problem:
                return errors(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", problem[1], [problem[0]])
            record = self.upsert_record(sobject, {**fields, field: value,
                                                  **({"Id": matches[0]} if matches else {})})
        created = not matches
        return Response(201 if created else 200, {"id": record["Id"], "success": True,
                                                  "errors": [], "created": created})

    def _collection(self, request: Request) -> Response:
        sobject, field = request.params["sobject"], request.params["field"]
        try:
            body = request.json() or {}
            records = list(body["records"])
        except (ValueError, KeyError, TypeError):
            return errors(400, "JSON_PARSER_ERROR", "body must be {allOrNone, records: [...]}")
        if field == "Id":
            return errors(400, "INVALID_FIELD", "sObject Collections upsert takes an external "
                          "id field, not Id", [field])
        if len(records) > MAX_COLLECTION:
            return errors(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more "
                          f"than {MAX_COLLECTION} records into this call")
        all_or_none = bool(body.get("allOrNone"))
        results: list[dict[str, Any]] = []
        with self.lock:
            for item in records:
                fields = {k: v for k, v in dict(item).items() if k != "attributes"}
                value = fields.pop(field, None)
                matches = self._matching(sobject, field, value) if value is not None else []
                problem = self.reject_if(sobject, fields)
                if value is None:
                    problem = (field, f"{field} is required for an upsert")
                elif len(matches) > 1:
                    problem = (field, f"{field} {value} matches {len(matches)} records")
                if problem:
                    code = "DUPLICATE_EXTERNAL_ID" if len(matches) > 1 else \
                        "FIELD_CUSTOM_VALIDATION_EXCEPTION"
                    results.append({"id": None, "success": False, "created": False,
                                    "errors": [{"statusCode": code, "message": problem[1],
                                                "fields": [problem[0]]}]})
                    continue
                if all_or_none and any(not r["success"] for r in results):
                    continue
                record = self.upsert_record(sobject, {**fields, field: value,
                                                      **({"Id": matches[0]} if matches else {})})
                results.append({"id": record["Id"], "success": True, "errors": [],
                                "created": not matches})
        return Response(200, results)

    # -- Outbound Messages -------------------------------------------------------------
    def send_outbound_message(self, url: str, sobject: str, ids: Sequence[str], *,
                              org_id: str | None = None, duplicate: bool = False,
                              fields: Sequence[str] = ("Id", "SystemModstamp", "StageName",
                                                       "IsWon"),
                              override: Mapping[str, Any] | None = None,
                              headers: Mapping[str, str] | None = None,
                              verify: str | bool = True) -> list[httpx.Response]:
        """POST one Outbound Message carrying ``ids`` (twice with ``duplicate``)."""
        with self.lock:
            rows = [{f: self.objects[sobject][i].get(f) for f in fields
                     if f in self.objects[sobject][i]} | dict(override or {}) for i in ids]
        body = outbound_message_xml(org_id or self.org_id, sobject, rows,
                                    instance_url=self.url if self._httpd else "https://emulator")
        answers = []
        context: ssl.SSLContext | bool = ssl.create_default_context(cafile=verify) \
            if isinstance(verify, str) else verify
        with httpx.Client(timeout=10, verify=context) as client:
            for _ in range(2 if duplicate else 1):
                answers.append(client.post(url, content=body, headers={
                    "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""',
                    **dict(headers or {})}))
        return answers
