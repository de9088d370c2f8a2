"""An SAP S/4HANA Cloud tenant on 127.0.0.1: the OData 2.0 services of
``schema.SERVICES`` under ``/sap/opu/odata/sap/<SERVICE>/`` with
``$metadata``, ``$filter``/``$orderby``/``$select``/``$top``/``$skip``/
``$inlinecount``/``$expand``, deep inserts, ETags (``If-Match`` on updates),
``$batch`` with change sets (all or none per change set), the CSRF token
dance (a session cookie, ``x-csrf-token: Fetch``, 403 "CSRF token validation
failed"), Basic auth for the communication user or an OAuth client
credentials token, and the shared fault injection; plus the accountant's
side: billing a debit memo request, clearing or cancelling the billing
document.

Where the public sources are silent (more-vendors.md section 6: "Where the
sources are thinnest") the emulator takes either reading, by a setting:
server-driven paging or none (``server_page_size``), a page maximum that
refuses a larger ``$top`` (``max_top``) or cuts it short silently
(``top_cap``), a ``$batch`` maximum or
none (``max_batch``), duplicate project ids refused or accepted
(``unique_project_ids``), ``If-Match`` required or not
(``require_if_match``), duplicate customer references on debit memo
requests refused or accepted (``duplicate_po_check``) and how often a CSRF
token expires (``expire_csrf``, ``csrf_expiry_rate``)."""

from __future__ import annotations

import base64
import copy
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from billbridge.connectors.sap_s4hana.emulator import company, query
from billbridge.connectors.sap_s4hana.emulator.rules import Refused, Rules
from billbridge.connectors.sap_s4hana.emulator.schema import SERVICES, EntitySet, Service, metadata
from billbridge.emulation import odata
from billbridge.emulation.server import EmulatorServer, Request, Response

ROOT = "/sap/opu/odata/sap"
SESSION_COOKIE = "SAP_SESSIONID_BB1_100"
CHANGES = frozenset({"POST", "PUT", "PATCH", "MERGE", "DELETE"})
CSRF_FAILED = b"CSRF token validation failed"
JSON = {"Content-Type": "application/json", "DataServiceVersion": "2.0"}
Key = tuple[str, ...]


def sap_error(status: int, code: str, message: str) -> Response:
    """SAP Gateway's 2.0 error body."""
    return Response(status, {"error": {"code": code, "message": {"lang": "en", "value": message},
                                       "innererror": {"transactionid": uuid.uuid4().hex.upper(),
                                                      "errordetails": []}}}, dict(JSON))


class SapEmulator(EmulatorServer):
    """One S/4HANA Cloud tenant. Rows live in ``rows[(service, set)][key]``."""

    def __init__(self, *, port: int = 0, user: str = "BILLBRIDGE_COMM_USER",
                 password: str = "sap-secret", client_id: str = "billbridge-oauth",
                 client_secret: str = "sap-oauth-secret", company_data: bool = True,
                 server_page_size: int | None = None, max_top: int = 5000,
                 top_cap: int | None = None,
                 max_batch: int | None = None, unique_project_ids: bool = True,
                 require_if_match: bool = True, duplicate_po_check: bool = False,
                 csrf_expiry_rate: float = 0.0, seed: int = 0, token_lifetime: float = 3600.0,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(port=port, token=None)
        self.user, self.password = user, password
        self.client_id, self.client_secret = client_id, client_secret
        self.server_page_size, self.max_top, self.max_batch = server_page_size, max_top, max_batch
        self.top_cap = top_cap  # answers at most this many rows a read, silently
        self.require_if_match = require_if_match
        self.csrf_expiry_rate = csrf_expiry_rate
        self.token_lifetime = token_lifetime
        self.clock = clock or time.monotonic
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.rows: dict[tuple[str, str], dict[Key, dict[str, Any]]] = {
            (s.name, e): {} for s in SERVICES.values() for e in s.sets}
        self.rules = Rules(self, unique_project_ids=unique_project_ids,
                           duplicate_po_check=duplicate_po_check)
        self.sessions: dict[str, str | None] = {}  # session id → its CSRF token
        self.csrf_fetches = 0
        self.csrf_refused = 0
        self.bearer_tokens: dict[str, float] = {}
        self.calls: list[tuple[str, str, int]] = []
        self.batches: list[int] = []
        self._numbers: dict[tuple[str, str], int] = {}
        self._journal: list[tuple[tuple[str, str], Key, dict[str, Any] | None]] | None = None
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        self.route("POST", "/oauth/token", self._token)
        self.route("POST", "/_emulator/csrf", self._admin_csrf)
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
            self.route(method, ROOT + "/{service}/", self._door(self._service_document))
            self.route(method, ROOT + "/{service}/{resource}", self._door(self._resource))
        if company_data:
            for row in company.BUSINESS_PARTNERS:
                self.insert("API_BUSINESS_PARTNER", "A_BusinessPartner", row)
            for row in company.PROJECTS:
                self.insert("API_ENTERPRISE_PROJECT_SRV;v=0002", "A_EnterpriseProject", row)

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth/token"

    # -- state -------------------------------------------------------------------------
    def _stamp(self) -> str:
        return query.json_instant(self.now())

    def _entity(self, service: str, name: str) -> EntitySet:
        return SERVICES[service].sets[name]

    def key_of(self, entity: EntitySet, row: Mapping[str, Any]) -> Key:
        return tuple(str(row.get(k)) for k in entity.key)

    def next_number(self, service: str, entity: EntitySet) -> str:
        last = self._numbers.get((service, entity.name), entity.first_number - 1) + 1
        self._numbers[(service, entity.name)] = last
        if entity.prop(entity.numbered or "") and \
                entity.prop(entity.numbered or "").type == "Edm.Guid":  # type: ignore[union-attr]
            return str(uuid.UUID(int=last + (1 << 96)))
        return str(last).zfill(entity.width)

    def insert(self, service: str, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A new row (SAP numbers its key where it does) with its children
        (deep insert); a copy back."""
        entity = self._entity(service, name)
        with self.lock:
            row = {k: v for k, v in fields.items() if k not in entity.navs}
            if entity.numbered and row.get(entity.numbered) in (None, ""):
                row[entity.numbered] = self.next_number(service, entity)
            if entity.stamp:
                row[entity.stamp] = self._stamp()
            self.write(service, name, row)
            for nav, child in entity.navs.items():
                given = fields.get(nav)
                items = given.get("results", []) if isinstance(given, Mapping) else given or []
                for item in items:
                    self.write(service, child, {**item, **{k: row[k] for k in entity.key}})
            self.rules.after_insert(service, name, row)
            return copy.deepcopy(row)

    def write(self, service: str, name: str, row: dict[str, Any]) -> None:
        entity = self._entity(service, name)
        key = self.key_of(entity, row)
        table = self.rows[(service, name)]
        if self._journal is not None:
            self._journal.append(((service, name), key, copy.deepcopy(table.get(key))))
        table[key] = row

    def remove(self, service: str, name: str, key: Key) -> None:
        table = self.rows[(service, name)]
        if self._journal is not None:
            self._journal.append(((service, name), key, copy.deepcopy(table.get(key))))
        table.pop(key, None)

    def all(self, service: str, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(r) for r in self.rows[(service, name)].values()]

    def children(self, service: str, entity: EntitySet, nav: str, row: Mapping[str, Any]
                 ) -> list[dict[str, Any]]:
        child = self._entity(service, entity.navs[nav])
        parent = self.key_of(entity, row)
        return [copy.deepcopy(r) for k, r in self.rows[(service, child.name)].items()
                if k[:len(parent)] == parent]

    def api_calls(self, method: str | None = None, suffix: str = "") -> int:
        with self.lock:
            return sum(1 for m, p, _s in self.calls
                       if p.endswith(suffix) and (method is None or m == method))

    # -- the accountant's side ----------------------------------------------------------
    def bill(self, debit_memo_request: str) -> dict[str, Any]:
        """Bill a debit memo request into a billing document (as SAP's billing run does)."""
        return self.rules.bill(debit_memo_request)

    def clear(self, billing_document: str) -> dict[str, Any]:
        """The customer's payment clears the billing document's receivable."""
        return self.rules.clear(billing_document)

    def cancel(self, billing_document: str) -> None:
        self.rules.cancel(billing_document)

    # -- CSRF ---------------------------------------------------------------------------
    def expire_csrf(self) -> None:
        """Every session's CSRF token stops being valid (as at a session timeout)."""
        with self.lock:
            self.sessions = {sid: None for sid in self.sessions}

    def _admin_csrf(self, request: Request) -> Response:
        """``{"expire": true}`` expires every token now; ``{"expiry_rate": 0.1}``
        expires one in ten as it is used (for ``billbridge emulator run``)."""
        body = request.json() or {}
        if body.get("expire"):
            self.expire_csrf()
        if "expiry_rate" in body:
            self.csrf_expiry_rate = float(body["expiry_rate"])
        return Response(200, {"refused": self.csrf_refused, "fetches": self.csrf_fetches,
                              "expiry_rate": self.csrf_expiry_rate})

    def _session(self, request: Request) -> str | None:
        for part in request.headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and value in self.sessions:
                return value
        return None

    def _fetch_csrf(self, request: Request) -> dict[str, str]:
        with self.lock:
            session = self._session(request)
            headers: dict[str, str] = {}
            if session is None:
                session = secrets.token_hex(16)
                headers["Set-Cookie"] = f"{SESSION_COOKIE}={session}; path=/; HttpOnly"
                self.sessions[session] = None
            token = self.sessions[session] or secrets.token_urlsafe(18)
            self.sessions[session] = token
            self.csrf_fetches += 1
        return {**headers, "x-csrf-token": token}

    def _csrf_valid(self, request: Request) -> bool:
        with self.lock:
            session = self._session(request)
            given = request.headers.get("x-csrf-token")
            if session is None or not given or self.sessions.get(session) != given:
                return False
            with self._random_lock:
                expired = self.csrf_expiry_rate > 0 and \
                    self._random.random() < self.csrf_expiry_rate
            if expired:  # the token timed out just now: refused, a fetch gives a new one
                self.sessions[session] = None
            return not expired

    # -- the door: auth, CSRF, record of the call ---------------------------------------
    def _authorised(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        if given.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(given[6:]).decode().partition(":")
            except ValueError:
                return False
            return (user, password) == (self.user, self.password)
        if given.startswith("Bearer "):
            with self.lock:
                expires = self.bearer_tokens.get(given[7:])
            return expires is not None and expires > self.clock()
        return False

    def _door(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def door(request: Request) -> Response:
            if not self._authorised(request):
                response = Response(401, b"", {"WWW-Authenticate":
                                               'Basic realm="SAP NetWeaver Application Server"'})
            elif unquote(request.params.get("service", "")) not in SERVICES:
                response = sap_error(404, "/IWFND/MED/170", "No service found for namespace "
                                     f"'', name '{request.params.get('service')}'")
            elif request.method in CHANGES and not self._csrf_valid(request):
                with self.lock:
                    self.csrf_refused += 1
                response = Response(403, CSRF_FAILED, {"x-csrf-token": "Required",
                                                       "Content-Type": "text/plain"})
            else:
                response = handler(request)
                if request.headers.get("x-csrf-token", "").lower() == "fetch":
                    response.headers.update(self._fetch_csrf(request))
            with self.lock:
                self.calls.append((request.method, request.path, response.status))
            return response
        return door

    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type"})
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id,
                                                                  self.client_secret):
            return Response(401, {"error": "invalid_client",
                                  "error_description": "Bad credentials"})
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.bearer_tokens[token] = self.clock() + self.token_lifetime
        return Response(200, {"access_token": token, "token_type": "bearer",
                              "expires_in": int(self.token_lifetime)})

    # -- reads ----------------------------------------------------------------------------
    def _service_document(self, request: Request) -> Response:
        service = SERVICES[unquote(request.params["service"])]
        if request.method not in ("GET", "HEAD"):
            return sap_error(405, "/IWFND/CM_MGW/004", "Method not allowed")
        return Response(200, {"d": {"EntitySets": list(service.sets)}}, dict(JSON))

    def _resource(self, request: Request) -> Response:
        service = SERVICES[unquote(request.params["service"])]
        resource = unquote(request.params["resource"])
        try:
            if resource == "$metadata":
                return Response(200, metadata(service).encode(),
                                {"Content-Type": "application/xml"})
            if resource == "$batch" and request.method == "POST":
                return self._batch(request, service)
            if request.method in ("GET", "HEAD"):
                return self._read(request, service, resource)
            status, row = self._change(service, request.method, resource, request.body,
                                       request.headers)
        except Refused as exc:
            return sap_error(exc.status, exc.code, str(exc))
        except query.ODataError as exc:
            return sap_error(400, "/IWBEP/CM_MGW_RT/022", str(exc))
        if row is None:
            return Response(status, b"", {"DataServiceVersion": "2.0"})
        tag = (row.get("__metadata") or {}).get("etag")
        return Response(status, {"d": row}, {**JSON, **({"ETag": tag} if tag else {})})

    def _located(self, service: Service, resource: str) -> tuple[EntitySet, Key | None]:
        name, key = query.parse_key(resource, self._key_names(service, resource))
        if name not in service.sets:
            raise Refused(404, "/IWFND/CM_MGW/020", f"Resource not found for segment '{name}'")
        entity = service.sets[name]
        if key is None:
            return entity, None
        if set(key) != set(entity.key):
            raise Refused(400, "/IWBEP/CM_MGW_RT/021",
                          f"Invalid key predicate for '{name}': ({', '.join(entity.key)})")
        return entity, tuple(str(key[k]) for k in entity.key)

    @staticmethod
    def _key_names(service: Service, resource: str) -> tuple[str, ...]:
        entity = service.sets.get(resource.partition("(")[0])
        return entity.key if entity else ()

    def shown(self, service: Service, entity: EntitySet, row: Mapping[str, Any],
              expand: list[str]) -> dict[str, Any]:
        """A row as SAP answers it: ``__metadata`` (uri, type, ETag) and
        expanded navigation properties."""
        keys = ",".join(f"{k}='{row.get(k)}'" for k in entity.key)
        uri = f"{self.url}{ROOT}/{service.name}/{entity.name}({keys})"
        meta: dict[str, Any] = {"id": uri, "uri": uri,
                                "type": f"{service.namespace}.{entity.type_name}"}
        if entity.stamp and row.get(entity.stamp):
            meta["etag"] = etag(row[entity.stamp])
        # Every declared property is answered; one never written is null
        # (a flag false), as SAP answers it.
        out: dict[str, Any] = {"__metadata": meta, **{
            p.name: copy.deepcopy(row.get(p.name, False if p.type == "Edm.Boolean" else None))
            for p in entity.props}}
        for nav in entity.navs:
            out[nav] = ({"results": self.children(service.name, entity, nav, row)}
                        if nav in expand else {"__deferred": {"uri": f"{uri}/{nav}"}})
        return out

    def _read(self, request: Request, service: Service, resource: str) -> Response:
        entity, key = self._located(service, resource)
        expand = odata.selected(request.arg("$expand"))
        with self.lock:
            if key is not None:
                row = self.rows[(service.name, entity.name)].get(key)
                if row is None:
                    raise Refused(404, "/IWBEP/CM_MGW_RT/020", "Resource not found")
                shown = self.shown(service, entity, row, expand)
                tag = shown["__metadata"].get("etag")
                return Response(200, {"d": shown}, {**JSON, **({"ETag": tag} if tag else {})})
            rows = [r for r in self.rows[(service.name, entity.name)].values()
                    if query.parse_filter(request.arg("$filter"))(r)]
            rows = query.ordered(rows, odata.parse_orderby(request.arg("$orderby")) or
                                 [(k, False) for k in entity.key])
            return self._page(request, service, entity, rows, expand)

    def _page(self, request: Request, service: Service, entity: EntitySet,
              rows: list[dict[str, Any]], expand: list[str]) -> Response:
        skip = int(request.arg("$skip") or 0)
        top = int(request.arg("$top") or self.max_top)
        if top > self.max_top:
            raise Refused(400, "/IWBEP/CM_MGW_RT/004",
                          f"$top {top} is more than the {self.max_top} rows a read may ask for")
        window = rows[skip:skip + (top if self.top_cap is None else min(top, self.top_cap))]
        page = len(window) if self.server_page_size is None else self.server_page_size
        taken = window[:page]
        columns = odata.selected(request.arg("$select"))
        body: dict[str, Any] = {"results": [
            odata.select(self.shown(service, entity, r, expand), columns and
                         ["__metadata", *columns]) for r in taken]}
        if request.arg("$inlinecount") == "allpages":
            body["__count"] = str(len(rows))
        if len(window) > page:
            moved = {k: v[0] for k, v in request.query.items()}
            moved.update({"$skip": str(skip + page), "$top": str(top - page)})
            body["__next"] = f"{self.url}{ROOT}/{service.name}/{entity.name}?{urlencode(moved)}"
        return Response(200, {"d": body}, dict(JSON))

    # -- writes ---------------------------------------------------------------------------
    def _change(self, service: Service, method: str, resource: str, raw: bytes,
                headers: Mapping[str, str]) -> tuple[int, dict[str, Any] | None]:
        """One write; (status, row answered). Raises ``Refused``."""
        entity, key = self._located(service, resource)
        body = self.rules.body(raw)
        with self.lock:
            if method == "POST":
                if key is not None:
                    raise Refused(405, "/IWBEP/CM_MGW_RT/011", "POST goes to the entity set")
                row = self.rules.create(service, entity, body)
                return 201, self.shown(service, entity, row, [])
            if key is None or key not in self.rows[(service.name, entity.name)]:
                raise Refused(404, "/IWBEP/CM_MGW_RT/020", "Resource not found")
            existing = self.rows[(service.name, entity.name)][key]
            if method == "DELETE":
                self.remove(service.name, entity.name, key)
                return 204, None
            self._check_etag(entity, existing, headers.get("if-match"))
            self.rules.update(service, entity, existing, body)
            return 204, None

    def _check_etag(self, entity: EntitySet, row: Mapping[str, Any], given: str | None) -> None:
        if entity.stamp is None:
            return
        if given is None:
            if self.require_if_match:
                raise Refused(428, "/IWBEP/CM_MGW_RT/153",
                              "Precondition required: send the entity's ETag in If-Match")
            return
        if given != "*" and given != etag(row.get(entity.stamp)):
            raise Refused(412, "/IWBEP/CM_MGW_RT/152",
                          "The entity was changed since it was read (ETag mismatch)")

    def _batch(self, request: Request, service: Service) -> Response:
        try:
            parts = odata.parse_batch(request.body, request.headers.get("content-type", ""))
        except ValueError as exc:
            return sap_error(400, "/IWBEP/CM_MGW_RT/050", str(exc))
        operations = sum(len(p.requests) for p in parts)
        with self.lock:
            self.batches.append(operations)
        if self.max_batch is not None and operations > self.max_batch:
            return sap_error(400, "/IWBEP/CM_MGW_RT/051",
                             f"The batch has {operations} operations; at most {self.max_batch}")
        answers = [self._changeset(service, part) for part in parts]
        content_type, body = odata.render_batch(answers, body_type="application/json")
        return Response(202, body, {"Content-Type": content_type, "DataServiceVersion": "2.0"})

    def _changeset(self, service: Service, part: odata.Part
                   ) -> odata.InnerResponse | list[odata.InnerResponse]:
        """A change set applies whole or not at all; a lone read answers as is."""
        done: list[odata.InnerResponse] = []
        with self.lock:
            self._journal = []
            try:
                for inner in part.requests:
                    done.append(self._inner(service, inner))
                    if done[-1].status >= 400 and part.changeset:
                        self._rollback(self._journal)
                        return done[-1]
            finally:
                self._journal = None
        return done if part.changeset else done[0]

    def _inner(self, service: Service, inner: odata.InnerRequest) -> odata.InnerResponse:
        path = urlsplit(inner.url).path
        resource = unquote(path.rsplit("/", 1)[-1] if "/" in path else path)
        try:
            if inner.method == "GET":
                fake = Request("GET", path, parse_qs(urlsplit(inner.url).query), {}, b"")
                answer = self._read(fake, service, resource)
                return odata.InnerResponse(answer.status, answer.encoded(),
                                           content_id=inner.content_id)
            status, row = self._change(service, inner.method, resource, inner.body,
                                       inner.headers)
        except Refused as exc:
            failed = sap_error(exc.status, exc.code, str(exc))
            return odata.InnerResponse(exc.status, failed.encoded(), content_id=inner.content_id)
        except query.ODataError as exc:
            failed = sap_error(400, "/IWBEP/CM_MGW_RT/022", str(exc))
            return odata.InnerResponse(400, failed.encoded(), content_id=inner.content_id)
        body = Response(status, {"d": row}).encoded() if row is not None else b""
        return odata.InnerResponse(status, body, content_id=inner.content_id)

    def _rollback(self, journal: list[tuple[tuple[str, str], Key, dict[str, Any] | None]]
                  ) -> None:
        for table, key, previous in reversed(journal):
            if previous is None:
                self.rows[table].pop(key, None)
            else:
                self.rows[table][key] = previous


def etag(stamp: Any) -> str:
    moment = query.from_json(stamp)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") if moment else str(stamp)
    return f"W/\"datetimeoffset'{text}'\""


__all__ = ["ROOT", "SESSION_COOKIE", "SapEmulator", "etag", "sap_error"]
