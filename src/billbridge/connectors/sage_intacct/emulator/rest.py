"""The emulated company's REST API (``/ia/api/v1``), over the records the
XML gateway keeps: a record written one way reads back the other
(``rest_mapping`` is the one table between the spellings).

``POST /oauth2/token`` (``client_credentials``, a form; tokens expire after
``token_seconds``); a bearer token on every other call, and the entity in
``X-IA-API-Param-Entity``; ``POST /objects/<area>/<name>`` and
``PATCH .../<key>``, ``GET .../<key>``; ``POST /services/core/composite``
(subrequests run one by one, each answered on its own, 200 when all
succeeded, else 207); ``POST /services/core/query`` (``filters`` with
``$eq $ne $lt $lte $gt $gte $in $contains $startsWith``, joined by
``filterExpression`` ``and`` or ``or``; ``orderBy``; ``start`` from 1 and
``size``; ``ia::meta``). An ``Idempotency-Key`` seen before is
``idempotency_replay``: ``"replay"`` answers what it answered then,
``"ignore"`` runs the write again (so the tests hold the connector to both).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from billbridge.connectors.sage_intacct import rest_mapping as rm
from billbridge.connectors.sage_intacct.emulator.company import ENTITIES
from billbridge.connectors.sage_intacct.emulator.query import sortable
from billbridge.emulation.server import Request, Response

if TYPE_CHECKING:
    from billbridge.connectors.sage_intacct.emulator.server import IntacctEmulator

BY_NAME = {name: obj for obj, name in rm.OBJECTS.items()}
MAX_SIZE = 2000
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda a, b: a == b, "$ne": lambda a, b: a != b, "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b, "$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b}


def rest_error(status: int, code: str, message: str) -> Response:
    return Response(status, {"ia::result": {"ia::error": {"code": code, "message": message}},
                             "ia::meta": {"totalCount": 1, "totalSuccess": 0,
                                          "totalError": 1}})


def _one(result: Mapping[str, Any] | None, error: tuple[str, str] | None) -> dict[str, Any]:
    """One write's answer, as a composite subrequest's or a call's body."""
    if error is not None:
        return {"ia::result": {"ia::error": {"code": error[0], "message": error[1]}},
                "ia::meta": {"totalCount": 1, "totalSuccess": 0, "totalError": 1}}
    return {"ia::result": dict(result or {}),
            "ia::meta": {"totalCount": 1, "totalSuccess": 1, "totalError": 0}}


def _matches(row: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    [(op, clause)] = spec.items()
    [(path, wanted)] = clause.items()
    value = rm.get_path(row, path)
    if op == "$in":
        return sortable(value) in {sortable(w) for w in wanted}
    if op == "$contains":
        return str(wanted) in str(value or "")
    if op == "$startsWith":
        return str(value or "").startswith(str(wanted))
    compare = COMPARE.get(op)
    if compare is None:
        raise ValueError(f"unknown filter operator {op}")
    left, right = sortable(value), sortable(wanted)
    return left[0] == right[0] and compare(left, right)


class RestApi:
    """The REST routes of one ``IntacctEmulator``."""

    def __init__(self, company: IntacctEmulator, *, idempotency_replay: str = "replay",
                 token_seconds: float = 3600.0,
                 client: tuple[str, str] = ("billbridge-client", "client-secret")) -> None:
        if idempotency_replay not in ("replay", "ignore"):
            raise ValueError("idempotency_replay is replay or ignore")
        self.company = company
        self.idempotency_replay = idempotency_replay
        self.token_seconds = token_seconds
        self.client = client  # the OAuth client's id and secret
        self.tokens: dict[str, float] = {}  # token → when it expires (company.clock)
        self.answered: dict[str, dict[str, Any]] = {}  # Idempotency-Key → its answer
        self.replayed = 0
        root = rm.API_PATH
        company.route("POST", f"{root}{rm.TOKEN}", self._token)
        company.route("POST", f"{root}{rm.COMPOSITE}", self._authorised(self._composite))
        company.route("POST", f"{root}{rm.QUERY}", self._authorised(self._query))
        company.route("POST", f"{root}/objects/{{area}}/{{name}}",
                      self._authorised(self._post))
        company.route("PATCH", f"{root}/objects/{{area}}/{{name}}/{{key}}",
                      self._authorised(self._patch))
        company.route("GET", f"{root}/objects/{{area}}/{{name}}/{{key}}",
                      self._authorised(self._get))

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (the next call answers 401)."""
        with self.company.lock:
            self.tokens.clear()

    # -- auth ----------------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type"})
        if (form.get("client_id"), form.get("client_secret")) != self.client:
            return Response(401, {"error": "invalid_client",
                                  "error_description": "unknown client or wrong secret"})
        token = secrets.token_urlsafe(24)
        with self.company.lock:
            self.tokens[token] = self.company.clock() + self.token_seconds
        return Response(200, {"access_token": token, "token_type": "Bearer",
                              "expires_in": int(self.token_seconds),
                              "refresh_token": secrets.token_urlsafe(12)})

    def _authorised(self, handler: Callable[[Request, str], Response]
                    ) -> Callable[[Request], Response]:
        def call(request: Request) -> Response:
            self.company.calls[f"rest {request.path.removeprefix(rm.API_PATH)}"] += 1
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            with self.company.lock:
                expires = self.tokens.get(token)
            if expires is None or expires <= self.company.clock():
                return rest_error(401, "invalidToken", "The token is not valid or has expired")
            location = request.headers.get(rm.ENTITY_HEADER.lower(), "").strip()
            if location and location not in ENTITIES:
                return rest_error(400, "invalidEntity", f"unknown entity {location}")
            if self.company._throttled():
                return rest_error(429, "GW-0010", "Too many requests")
            with self.company.lock:
                return handler(request, location)
        return call

    # -- writes --------------------------------------------------------------------------
    def _write(self, method: str, path: str, body: Any, key: str | None,
               location: str) -> dict[str, Any]:
        """One write (a call's or a subrequest's), replayed by its key when asked to."""
        if key and key in self.answered and self.idempotency_replay == "replay":
            self.replayed += 1
            return self.answered[key]
        answer = self._run(method, path, body if isinstance(body, Mapping) else {}, location)
        if key:
            self.answered[key] = answer
        return answer

    def _run(self, method: str, path: str, body: Mapping[str, Any],
             location: str) -> dict[str, Any]:
        from billbridge.connectors.sage_intacct.emulator.server import Refused

        parts = path.removeprefix(rm.API_PATH).strip("/").split("/")
        obj = BY_NAME.get("/".join(parts[1:3])) if parts[0] == "objects" else None
        if obj is None or (method == "PATCH") != (len(parts) == 4):
            return _one(None, ("notFound", f"no {method} {path}"))
        try:
            if method == "PATCH":
                row = self.company.objects.get(obj, {}).get(int(parts[3]))
                if row is None or (location and row["MEGAENTITYID"] not in ("", location)):
                    return _one(None, ("notFound", f"no {parts[1]}/{parts[2]} {parts[3]}"))
                self.company.change(row, rm.record_of(rm.FIELDS[obj], body))
            elif obj == "ARINVOICE":
                fields = rm.invoice_record(body)
                row = self.company.invoice(fields, fields.pop("invoiceitems"), location)
            elif obj == "TIMESHEET":
                sheet, lines = rm.timesheet_record(body)
                if len(lines) != 1:
                    return _one(None, ("invalidRequest", "the emulator takes one line a "
                                                         "timesheet"))
                row = self.company.create(obj, {**sheet, "TIMESHEETENTRIES": {
                    "TIMESHEETENTRY": lines[0]}}, location)
            else:
                row = self.company.create(obj, rm.record_of(rm.FIELDS[obj], body), location)
        except Refused as exc:
            return _one(None, (exc.errorno, str(exc)))
        return _one({"key": row["RECORDNO"], "id": row.get("CUSTOMERID") or
                     row.get("PROJECTID") or row["RECORDNO"],
                     "href": f"{rm.API_PATH}/objects/{rm.OBJECTS[obj]}/{row['RECORDNO']}"},
                    None)

    def _composite(self, request: Request, location: str) -> Response:
        subrequests = request.json()
        if not isinstance(subrequests, list) or not subrequests:
            return rest_error(400, "invalidRequest", "a composite call is a list of "
                                                     "subrequests")
        answers = []
        for sub in subrequests:
            headers = {k.lower(): v for k, v in (sub.get("headers") or {}).items()}
            answers.append(self._write(str(sub.get("method") or "").upper(),
                                       str(sub.get("path") or ""), sub.get("body"),
                                       headers.get("idempotency-key"), location))
        failed = sum(a["ia::meta"]["totalError"] for a in answers)
        return Response(200 if not failed else 207, {
            "ia::result": answers, "ia::meta": {"totalCount": len(answers),
                                                "totalSuccess": len(answers) - failed,
                                                "totalError": failed}})

    def _post(self, request: Request, location: str) -> Response:
        answer = self._write("POST", request.path, request.json(),
                             request.headers.get("idempotency-key"), location)
        return Response(400 if answer["ia::meta"]["totalError"] else 201, answer)

    def _patch(self, request: Request, location: str) -> Response:
        answer = self._write("PATCH", request.path, request.json(), None, location)
        return Response(400 if answer["ia::meta"]["totalError"] else 200, answer)

    # -- reads ---------------------------------------------------------------------------
    def _rows(self, obj: str, location: str) -> list[dict[str, Any]]:
        return [rm.rest_of(rm.FIELDS[obj], row) for row in self.company._visible(obj, location)]

    def _get(self, request: Request, location: str) -> Response:
        obj = BY_NAME.get(f"{request.params['area']}/{request.params['name']}")
        found = [r for r in self._rows(obj, location) if r.get("key") == request.params["key"]] \
            if obj else []
        if not found:
            return rest_error(404, "notFound", f"no record {request.params['key']}")
        return Response(200, {"ia::result": found[0], "ia::meta": {"totalCount": 1}})

    def _query(self, request: Request, location: str) -> Response:
        body = request.json() or {}
        obj = BY_NAME.get(str(body.get("object") or ""))
        fields = list(body.get("fields") or [])
        if obj is None:
            return rest_error(400, "invalidRequest", f"unknown object {body.get('object')}")
        if not fields:
            return rest_error(400, "invalidRequest", "a query names its fields")
        filters = list(body.get("filters") or [])
        join = any if str(body.get("filterExpression") or "and").lower() == "or" else all
        try:
            rows = [r for r in self._rows(obj, location)
                    if not filters or join(_matches(r, f) for f in filters)]
        except (ValueError, AttributeError) as exc:
            return rest_error(400, "invalidRequest", f"cannot read the filters: {exc}")
        for spec in reversed(list(body.get("orderBy") or [{"key": "asc"}])):
            [(path, way)] = spec.items()
            rows.sort(key=lambda r, p=path: sortable(rm.get_path(r, p)),  # type: ignore[misc]
                      reverse=str(way).lower() == "desc")
        start = max(1, int(body.get("start") or 1))
        size = max(1, min(int(body.get("size") or 100), MAX_SIZE))
        page = rows[start - 1:start - 1 + size]
        more = start - 1 + len(page) < len(rows)
        return Response(200, {
            "ia::result": [{f: rm.get_path(r, f) for f in fields} for r in page],
            "ia::meta": {"totalCount": len(rows), "start": start, "pageSize": size,
                         "next": start + len(page) if more else None,
                         "previous": max(1, start - size) if start > 1 else None}})
