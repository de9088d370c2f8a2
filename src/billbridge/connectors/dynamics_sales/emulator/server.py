"""A Dataverse (Dynamics 365 Sales) environment on 127.0.0.1: the Web API v9.2
paths for opportunities, accounts and currencies, change tracking
(``Prefer: odata.track-changes``, delta links, ``$deletedEntity`` rows, tokens
that expire), ``@odata.nextLink`` paging under ``Prefer: odata.maxpagesize``,
alternate-key ``PATCH`` upserts with ``If-Match: *`` / ``If-None-Match: *``,
``$batch`` with change sets (at most 1,000 requests, all or none per change
set, ``Prefer: odata.continue-on-error``), the three service protection
limits answered with 429 and ``Retry-After``, an Entra ID-like token endpoint
(client credentials, OpenID discovery for MSAL), plug-in webhooks sent to a
URL, and the shared fault injection.

What it leaves out is listed in docs/connectors/dynamics-sales.md."""

from __future__ import annotations

import functools
import json
import math
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from billbridge.connectors.dynamics_sales.emulator.company import (
    ACCOUNTS,
    CURRENCIES,
    OPPORTUNITIES,
)
from billbridge.connectors.dynamics_sales.emulator.odata import (
    GUID,
    ODataError,
    after,
    parse_filter,
    parse_key,
    sort_key,
)
from billbridge.emulation import odata
from billbridge.emulation.limits import admit
from billbridge.emulation.server import (
    DecimalResponse,
    EmulatorServer,
    Request,
    Response,
    decimal_json,
)

API = "/api/data/v9.2"
MAX_PAGE = 5000  # default and maximum of odata.maxpagesize
MAX_BATCH = 1000  # requests in one $batch
# The service protection limits' Web API codes and messages.
REQUESTS_CODE, EXECUTION_CODE, CONCURRENCY_CODE = "0x80072322", "0x80072321", "0x80072326"


@dataclass(frozen=True)
class Table:
    logical_name: str
    primary_id: str


TABLES: dict[str, Table] = {
    "opportunities": Table("opportunity", "opportunityid"),
    "accounts": Table("account", "accountid"),
    "transactioncurrencies": Table("transactioncurrency", "transactioncurrencyid"),
}
_LOGICAL = {t.logical_name: name for name, t in TABLES.items()}
_NOT_SUPPORTED_WITH_TRACKING = ("$filter", "$orderby", "$expand", "$top")


def odata_error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}},
                    {"OData-Version": "4.0"})


class DataverseEmulator(EmulatorServer):
    """One Dataverse environment. Rows live in ``rows[entity set][id]``; every
    write moves ``versionnumber`` forward (the change-tracking version) and
    stamps ``modifiedon`` at ``now()`` to the second, as Dataverse does."""

    def __init__(self, *, port: int = 0, tls: tuple[str, str] | None = None,
                 company: bool = True, tenant: str = "billbridge-tenant",
                 client_id: str = "billbridge-app", client_secret: str = "dataverse-secret",
                 token_lifetime: float = 3600.0, requests_limit: int = 6000,
                 execution_ms_limit: float = 1_200_000, concurrency_limit: int = 52,
                 window_seconds: float = 300.0,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(port=port, token=None, tls=tls)
        self.tenant, self.client_id, self.client_secret = tenant, client_id, client_secret
        self.token_lifetime = token_lifetime
        self.requests_limit, self.execution_ms_limit = requests_limit, execution_ms_limit
        self.concurrency_limit, self.window_seconds = concurrency_limit, window_seconds
        self.request_cost_ms: float | None = None  # a fixed cost per request, for tests
        self.clock = clock or time.monotonic
        self.rows: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in TABLES}
        self.alternate_keys: dict[str, list[tuple[str, ...]]] = {
            "accounts": [("accountnumber",)], "opportunities": [("bb_projectcode",)]}
        self.tracking: set[str] = {"opportunities", "accounts"}
        self.version = 1000
        self.changes: list[tuple[int, str, str, bool]] = []  # (version, set, id, deleted)
        self.token_floor = 0  # delta tokens below this version have expired
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.stuck_next_link = False  # a server whose nextLink never moves on
        self.reject_if: Callable[[str, Mapping[str, Any]], str | None] = lambda _s, _r: None
        self.valid_tokens: dict[str, float] = {}
        self.token_grants = 0
        self.log: list[tuple[str, str, int]] = []  # (method, path, status) of API calls
        self.writes: list[tuple[str, str, dict[str, Any]]] = []  # every applied write
        # While a change set runs: (set, id, row before, len(changes), len(writes)).
        self._journal: list[tuple[str, str, dict[str, Any] | None, int, int]] | None = None
        self._limit_lock = threading.Lock()
        self._window: deque[float] = deque()
        self._spent: deque[tuple[float, float]] = deque()  # (when, ms) of finished requests
        self._in_flight = 0
        self.admitted: list[float] = []  # when each API request was let through
        self.throttled: dict[str, int] = {REQUESTS_CODE: 0, EXECUTION_CODE: 0,
                                          CONCURRENCY_CODE: 0}
        self.route("POST", "/{tenant}/oauth2/v2.0/token", self._token)
        self.route("GET", "/{tenant}/v2.0/.well-known/openid-configuration", self._discovery)
        self.route("GET", API + "/{resource}", self._get)
        self.route("GET", API + "/{resource}/Attributes/{cast}", self._attributes)
        self.route("PATCH", API + "/{resource}", self._patch)
        self.route("POST", API + "/{resource}", self._post)
        self.route("DELETE", API + "/{resource}", self._delete)
        if company:
            self.seed(transactioncurrencies=CURRENCIES, accounts=ACCOUNTS,
                      opportunities=OPPORTUNITIES)

    # -- state ---------------------------------------------------------------------
    def _stamp(self) -> str:
        return self.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def write(self, entity_set: str, fields: Mapping[str, Any], *,
              modifiedon: str | None = None) -> dict[str, Any]:
        """Create or change a row (by its primary id when given); a copy back."""
        table = TABLES[entity_set]
        with self.lock:
            rows = self.rows[entity_set]
            row_id = str(fields.get(table.primary_id) or uuid.uuid4()).lower()
            previous = rows.get(row_id)
            if self._journal is not None:
                self._journal.append((entity_set, row_id,
                                      None if previous is None else dict(previous),
                                      len(self.changes), len(self.writes)))
            self.version += 1
            stamp = modifiedon or self._stamp()
            row = {**(previous or {"createdon": stamp}), **fields, table.primary_id: row_id,
                   "versionnumber": self.version, "modifiedon": stamp}
            rows[row_id] = row
            self.changes.append((self.version, entity_set, row_id, False))
            self.writes.append((entity_set, row_id, dict(fields)))
            return dict(row)

    def delete(self, entity_set: str, row_id: str) -> None:
        with self.lock:
            previous = self.rows[entity_set].pop(row_id.lower())
            if self._journal is not None:
                self._journal.append((entity_set, row_id.lower(), previous,
                                      len(self.changes), len(self.writes)))
            self.version += 1
            self.changes.append((self.version, entity_set, row_id.lower(), True))

    def seed(self, **tables: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
        """``seed(accounts=[...], opportunities=[...])``; a row may carry its own
        ``modifiedon`` (to put many rows on one second). Returns the ids."""
        made: dict[str, list[str]] = {}
        for entity_set, rows in tables.items():
            for row in rows:
                fields = {k: v for k, v in row.items() if k != "modifiedon"}
                made.setdefault(entity_set, []).append(
                    self.write(entity_set, fields, modifiedon=row.get("modifiedon"))[
                        TABLES[entity_set].primary_id])
        return made

    def row(self, entity_set: str, row_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.rows[entity_set][row_id.lower()])

    def all_rows(self, entity_set: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.rows[entity_set].values()]

    def expire_delta_tokens(self) -> None:
        """Every delta token handed out so far is now too old (as after
        ``ExpireChangeTrackingInDays``)."""
        with self.lock:
            self.token_floor = self.version + 1

    def requests_to(self, prefix: str = API) -> list[tuple[str, str, int]]:
        with self.lock:
            return [entry for entry in self.log if entry[1].startswith(prefix)]

    def _rollback(self, journal: list[tuple[str, str, dict[str, Any] | None, int, int]],
                  ) -> None:
        """Undo a change set that failed part-way: all or none."""
        for entity_set, row_id, previous, changes, writes in reversed(journal):
            if previous is None:
                self.rows[entity_set].pop(row_id, None)
            else:
                self.rows[entity_set][row_id] = previous
            del self.changes[changes:]
            del self.writes[writes:]

    # -- auth and limits -------------------------------------------------------------
    def dispatch(self, request: Request, *,
                 drop: Callable[[], None]) -> Response | None:
        if not request.path.startswith(API):
            return super().dispatch(request, drop=drop)
        auth = request.headers.get("authorization", "")
        expiry = self.valid_tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if expiry is None or expiry <= self.clock():
            answer: Response | None = Response(
                401, b"", {"WWW-Authenticate": f'Bearer error="invalid_token", '
                           f'authorization_uri="{self.url}/{self.tenant}/oauth2/authorize"'})
            self._record(request, 401)
            return answer
        refused = self._admit()
        if refused is not None:
            self._record(request, 429)
            return refused
        started = time.perf_counter()
        try:
            answer = super().dispatch(request, drop=drop)
        finally:
            spent = self.request_cost_ms if self.request_cost_ms is not None \
                else (time.perf_counter() - started) * 1000
            with self._limit_lock:
                self._in_flight -= 1
                self._spent.append((self.clock(), spent))
        self._record(request, 0 if answer is None else answer.status)
        if answer is not None:
            with self._limit_lock:
                answer.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] = str(
                    max(0, self.requests_limit - len(self._window)))
                answer.headers["x-ms-ratelimit-time-remaining-xrm-requests"] = str(round(
                    max(0.0, self.execution_ms_limit - sum(ms for _t, ms in self._spent))))
        return answer

    def _record(self, request: Request, status: int) -> None:
        with self.lock:
            self.log.append((request.method, request.path, status))

    def _admit(self) -> Response | None:
        """The three limits, per user over a sliding window: concurrency,
        combined execution time, then number of requests."""
        with self._limit_lock:
            now = self.clock()
            while self._spent and now - self._spent[0][0] >= self.window_seconds:
                self._spent.popleft()
            if self._in_flight >= self.concurrency_limit:
                return self._throttle(CONCURRENCY_CODE, 1, "Number of concurrent requests "
                                      f"exceeded the limit of {self.concurrency_limit}.")
            used = sum(ms for _t, ms in self._spent)
            if used >= self.execution_ms_limit:
                wait = self.window_seconds - (now - self._spent[0][0])
                return self._throttle(
                    EXECUTION_CODE, wait, "Combined execution time of incoming requests "
                    f"exceeded limit of {self.execution_ms_limit:,.0f} milliseconds over time "
                    f"window of {self.window_seconds:.0f} seconds. Decrease number of "
                    "concurrent requests or reduce the duration of requests and try again "
                    "later.")
            wait_for = admit(self._window, self.requests_limit, self.window_seconds, now)
            if wait_for is not None:
                return self._throttle(
                    REQUESTS_CODE, wait_for, "Number of requests exceeded the limit of "
                    f"{self.requests_limit} over time window of {self.window_seconds:.0f} "
                    "seconds.")
            self._in_flight += 1
            self.admitted.append(now)
            return None

    def _throttle(self, code: str, wait: float, message: str) -> Response:
        self.throttled[code] += 1
        answer = odata_error(429, code, message)
        answer.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return answer

    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if request.params["tenant"] != self.tenant:
            return Response(400, {"error": "invalid_tenant",
                                  "error_description": f"Tenant '{request.params['tenant']}' "
                                  "not found."})
        if form.get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type",
                                  "error_description": "The grant type is not supported."})
        if form.get("client_id") != self.client_id or \
                form.get("client_secret") != self.client_secret:
            return Response(401, {"error": "invalid_client",
                                  "error_description": "Invalid client secret provided."})
        if not str(form.get("scope", "")).endswith("/.default"):
            return Response(400, {"error": "invalid_scope",
                                  "error_description": "The scope must end with /.default "
                                  "for the client credentials flow."})
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.valid_tokens[token] = self.clock() + self.token_lifetime
            self.token_grants += 1
        lifetime = int(self.token_lifetime)
        return Response(200, {"token_type": "Bearer", "expires_in": lifetime,
                              "ext_expires_in": lifetime, "access_token": token})

    def expire_tokens(self) -> None:
        with self.lock:
            self.valid_tokens.clear()

    def _discovery(self, request: Request) -> Response:
        base = f"{self.url}/{request.params['tenant']}"
        return Response(200, {"token_endpoint": f"{base}/oauth2/v2.0/token",
                              "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                              "issuer": f"{base}/v2.0",
                              "token_endpoint_auth_methods_supported": ["client_secret_post"]})

    # -- reads -----------------------------------------------------------------------
    def _get(self, request: Request) -> Response:
        try:
            entity_set, key = parse_key(unquote(request.params["resource"]))
            if entity_set == "EntityDefinitions":
                return self._definitions(request)
            if entity_set not in TABLES:
                return odata_error(404, "0x80060888",
                                   f"Resource not found for the segment '{entity_set}'.")
            if key is not None:
                return self._get_one(request, entity_set, key)
            return self._list(request, entity_set)
        except ODataError as exc:
            return odata_error(400, "0x80060888", str(exc))

    def _get_one(self, request: Request, entity_set: str,
                 key: dict[str, Any] | str) -> Response:
        with self.lock:
            found = self._find(entity_set, key)
            if found is None:
                return self._missing(entity_set, key)
            return DecimalResponse(200, self._shape(entity_set, found, self._columns(request)),
                            {"OData-Version": "4.0"})

    def _columns(self, request: Request) -> list[str]:
        return odata.selected(request.arg("$select"))

    def _shape(self, entity_set: str, row: Mapping[str, Any],
               columns: Sequence[str]) -> dict[str, Any]:
        primary = TABLES[entity_set].primary_id
        shaped = odata.select(row, [*columns, primary] if columns else None)
        return {"@odata.etag": f'W/"{row["versionnumber"]}"', **shaped}

    @staticmethod
    def _prefer(request: Request) -> tuple[int, bool, bool]:
        """(maxpagesize, track-changes asked, maxpagesize given)."""
        prefer = request.headers.get("prefer", "")
        size = odata.max_page_size(prefer, MAX_PAGE)
        return size or MAX_PAGE, "odata.track-changes" in prefer, size is not None

    def _link(self, entity_set: str, request: Request, **extra: str) -> str:
        return odata.next_link(f"{self.url}{API}/{entity_set}", request.query,
                               drop=("$skiptoken", "$deltatoken"), **extra)

    def _list(self, request: Request, entity_set: str) -> Response:
        size, tracking, sized = self._prefer(request)
        if tracking or request.arg("$deltatoken") is not None:
            for option in _NOT_SUPPORTED_WITH_TRACKING:
                if request.arg(option) is not None:
                    return odata_error(400, "0x80060888", f'The "{option}" query parameter '
                                       "isn't supported when Change Tracking is enabled.")
            if entity_set not in self.tracking:
                return odata_error(400, "0x80040800", f"Entity '{TABLES[entity_set].logical_name}'"
                                   " is not enabled for change tracking.")
            return self._changes(request, entity_set, size)
        predicate = parse_filter(request.arg("$filter"))
        terms = [*odata.parse_orderby(request.arg("$orderby")),
                 (TABLES[entity_set].primary_id, False)]
        state = odata.decode_token(request.arg("$skiptoken") or "") \
            if request.arg("$skiptoken") else {}

        def order(a: dict[str, Any], b: dict[str, Any]) -> int:
            ka, kb = sort_key(a, terms), sort_key(b, terms)
            return 1 if after(ka, kb, terms) else -1 if after(kb, ka, terms) else 0

        with self.lock:
            rows = sorted((r for r in self.rows[entity_set].values() if predicate(r)),
                          key=functools.cmp_to_key(order))
            if "last" in state:
                rows = [r for r in rows if after(sort_key(r, terms), state["last"], terms)]
            top = request.arg("$top")
            if top is not None and not sized:  # $top is ignored under maxpagesize
                rows = rows[:int(top)]
            page = rows[:size]
            body: dict[str, Any] = {
                "@odata.context": f"{self.url}{API}/$metadata#{entity_set}",
                "value": [self._shape(entity_set, r, self._columns(request)) for r in page]}
            if len(rows) > size:
                last = state.get("last") if self.stuck_next_link else sort_key(page[-1], terms)
                body["@odata.nextLink"] = self._link(
                    entity_set, request, **{"$skiptoken": odata.encode_token({"last": last})})
        return DecimalResponse(200, body, {"OData-Version": "4.0"})

    def _changes(self, request: Request, entity_set: str, size: int) -> Response:
        """The first read under ``odata.track-changes`` (every row, by id) or a
        delta read (rows changed and deleted since the token), paged; the last
        page carries the ``@odata.deltaLink`` for next time."""
        state = odata.decode_token(request.arg("$skiptoken") or "") \
            if request.arg("$skiptoken") else {}
        token = request.arg("$deltatoken")
        with self.lock:
            since: int | None = None
            if token is not None:
                head = token.split("!")[0]
                if not head.isdigit():
                    return odata_error(400, "0x80060888", f"Invalid delta token '{token}'.")
                since = int(head)
                if since < self.token_floor:
                    return odata_error(400, "0x80044352",
                                       f"The delta token '{token}' has expired: change "
                                       "tracking data older than ExpireChangeTrackingInDays "
                                       "was removed. Read the table again from the start.")
            as_of = int(state.get("as_of", self.version))
            columns = self._columns(request)
            items: list[tuple[Any, dict[str, Any]]] = []
            if since is None:
                for row_id in sorted(self.rows[entity_set]):
                    if row_id > str(state.get("after") or ""):
                        items.append((row_id, self._shape(
                            entity_set, self.rows[entity_set][row_id], columns)))
            else:
                latest: dict[str, tuple[int, bool]] = {}
                for version, name, row_id, deleted in self.changes:
                    if name == entity_set and since < version <= as_of:
                        latest[row_id] = (version, deleted)
                for row_id, (version, deleted) in sorted(latest.items(), key=lambda i: i[1][0]):
                    if version <= int(state.get("after") or 0):
                        continue
                    if deleted:
                        items.append((version, {
                            "@odata.context":
                                f"{self.url}{API}/$metadata#{entity_set}/$deletedEntity",
                            "id": row_id, "reason": "deleted"}))
                    elif row_id in self.rows[entity_set]:
                        items.append((version, self._shape(
                            entity_set, self.rows[entity_set][row_id], columns)))
            page = items[:size]
            body: dict[str, Any] = {
                "@odata.context": f"{self.url}{API}/$metadata#{entity_set}",
                "value": [item for _key, item in page]}
            if len(items) > size:
                moved = state.get("after") if self.stuck_next_link else page[-1][0]
                carry = {"as_of": as_of, "after": moved}
                extra = {"$skiptoken": odata.encode_token(carry)}
                if token is not None:
                    extra["$deltatoken"] = token
                body["@odata.nextLink"] = self._link(entity_set, request, **extra)
            else:
                issued = self.now().strftime("%m/%d/%Y %H:%M:%S")
                body["@odata.deltaLink"] = self._link(
                    entity_set, request, **{"$deltatoken": f"{as_of}!{issued}"})
        return DecimalResponse(200, body, {"OData-Version": "4.0",
                                    "Preference-Applied": "odata.track-changes"})

    def _definitions(self, request: Request) -> Response:
        predicate = parse_filter(request.arg("$filter"))
        found = [{"LogicalName": t.logical_name, "EntitySetName": name,
                  "PrimaryIdAttribute": t.primary_id,
                  "ChangeTrackingEnabled": name in self.tracking,
                  "MetadataId": str(uuid.uuid5(uuid.NAMESPACE_URL, name))}
                 for name, t in TABLES.items()]
        return Response(200, {"@odata.context": f"{self.url}{API}/$metadata#EntityDefinitions",
                              "value": [d for d in found if predicate(d)]})

    def _attributes(self, _request: Request) -> Response:
        return Response(200, {"value": []})  # no choice columns are described

    # -- writes ----------------------------------------------------------------------
    def _find(self, entity_set: str, key: Mapping[str, Any] | str) -> dict[str, Any] | None:
        rows = self.rows[entity_set]
        if isinstance(key, str):
            return rows.get(key)
        if tuple(sorted(key)) not in {tuple(sorted(k)) for k in self.alternate_keys.get(
                entity_set, [])}:
            raise ODataError(f"The key with attributes {', '.join(key)} is not defined as an "
                             f"alternate key for entity {TABLES[entity_set].logical_name}.")
        for row in rows.values():
            if all(row.get(col) == value for col, value in key.items()):
                return row
        return None

    def _missing(self, entity_set: str, key: Mapping[str, Any] | str) -> Response:
        shown = key if isinstance(key, str) else ",".join(f"{k}={v}" for k, v in key.items())
        return odata_error(404, "0x80040217",
                           f"{TABLES[entity_set].logical_name} With Id = {shown} Does Not Exist")

    def _fields(self, entity_set: str, request: Request) -> dict[str, Any] | Response:
        try:
            body = request.json()
        except ValueError:
            return odata_error(400, "0x80060888", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return odata_error(400, "0x80060888", "The request body must be a JSON object.")
        for name in body:
            if not name.islower() or (name.startswith("@") and name != "@odata.type"):
                return odata_error(400, "0x80060888", f"Invalid property '{name}' was found in "
                                   f"entity 'Microsoft.Dynamics.CRM."
                                   f"{TABLES[entity_set].logical_name}'.")
        return {k: v for k, v in body.items() if not k.startswith("@")}

    def _patch(self, request: Request) -> Response:
        try:
            entity_set, key = parse_key(unquote(request.params["resource"]))
            if entity_set not in TABLES or key is None:
                return odata_error(405, "0x80060888", "PATCH needs a record: "
                                   f"{entity_set}(<id or alternate key>)")
            fields = self._fields(entity_set, request)
            if isinstance(fields, Response):
                return fields
            with self.lock:
                found = self._find(entity_set, key)
                if_match = request.headers.get("if-match")
                if found is None and if_match is not None:
                    return self._missing(entity_set, key)
                if found is not None and request.headers.get("if-none-match") == "*":
                    return odata_error(412, "", "A record with matching key values already "
                                       "exists.")
                if found is not None and if_match not in (None, "*") and \
                        if_match != f'W/"{found["versionnumber"]}"':
                    return odata_error(412, "", "The version of the existing record doesn't "
                                       "match the RowVersion property provided.")
                refusal = self.reject_if(entity_set, {**(found or {}), **fields})
                if refusal:
                    return odata_error(400, "0x80040265", refusal)
                primary = TABLES[entity_set].primary_id
                if found is not None:
                    fields[primary] = found[primary]
                elif isinstance(key, str):
                    fields[primary] = key
                else:
                    fields.update(key)
                written = self.write(entity_set, fields)
            return self._written(entity_set, written, 204)
        except ODataError as exc:
            return odata_error(400, "0x80060888", str(exc))

    def _written(self, entity_set: str, row: Mapping[str, Any], status: int) -> Response:
        row_id = row[TABLES[entity_set].primary_id]
        return Response(status, b"", {"OData-EntityId": f"{self.url}{API}/{entity_set}({row_id})",
                                      "OData-Version": "4.0"})

    def _post(self, request: Request) -> Response:
        resource = unquote(request.params["resource"])
        if resource == "$batch":
            return self._batch(request)
        if resource not in TABLES:
            return odata_error(404, "0x80060888", f"Resource not found for the segment "
                               f"'{resource}'.")
        fields = self._fields(resource, request)
        if isinstance(fields, Response):
            return fields
        primary = TABLES[resource].primary_id
        with self.lock:
            if fields.get(primary) and str(fields[primary]).lower() in self.rows[resource]:
                return odata_error(412, "", "A record with matching key values already exists.")
            refusal = self.reject_if(resource, fields)
            if refusal:
                return odata_error(400, "0x80040265", refusal)
            written = self.write(resource, fields)
        return self._written(resource, written, 204)

    def _delete(self, request: Request) -> Response:
        try:
            entity_set, key = parse_key(unquote(request.params["resource"]))
            if entity_set not in TABLES or key is None:
                return odata_error(405, "0x80060888", "DELETE needs a record")
            with self.lock:
                found = self._find(entity_set, key)
                if found is None:
                    return self._missing(entity_set, key)
                self.delete(entity_set, found[TABLES[entity_set].primary_id])
            return Response(204, b"", {"OData-Version": "4.0"})
        except ODataError as exc:
            return odata_error(400, "0x80060888", str(exc))

    # -- $batch ----------------------------------------------------------------------
    def _batch(self, request: Request) -> Response:
        try:
            parts = odata.parse_batch(request.body, request.headers.get("content-type", ""))
        except (ValueError, IndexError) as exc:
            return odata_error(400, "0x80060888", f"The batch request is not valid: {exc}")
        if sum(len(p.requests) for p in parts) > MAX_BATCH:
            return odata_error(400, "0x80060888", "The number of requests in the batch "
                               f"exceeds the limit of {MAX_BATCH}.")
        keep_going = "odata.continue-on-error" in request.headers.get("prefer", "")
        answers: list[odata.InnerResponse | list[odata.InnerResponse]] = []
        with self.lock:
            for part in parts:
                failed = False
                if part.changeset:
                    if any(r.method == "GET" for r in part.requests):
                        answers.append(self._inner_error(400, "GET requests are not allowed "
                                                         "in a change set."))
                        failed = True
                    else:
                        self._journal = []
                        done: list[odata.InnerResponse] = []
                        for inner in part.requests:
                            answer = self._run_inner(inner)
                            if answer.status >= 400:
                                self._rollback(self._journal)
                                answers.append(answer)
                                failed = True
                                break
                            done.append(answer)
                        self._journal = None
                        if not failed:
                            answers.append(done)
                else:
                    answer = self._run_inner(part.requests[0])
                    answers.append(answer)
                    failed = answer.status >= 400
                if failed and not keep_going:
                    break
        content_type, body = odata.render_batch(answers)
        return Response(200, body, {"Content-Type": content_type, "OData-Version": "4.0"})

    @staticmethod
    def _inner_error(status: int, message: str) -> odata.InnerResponse:
        return odata.InnerResponse(status, json.dumps(
            {"error": {"code": "0x80060888", "message": message}}).encode())

    def _run_inner(self, inner: odata.InnerRequest) -> odata.InnerResponse:
        split = urlsplit(inner.url)
        path = split.path if split.path.startswith("/") else f"{API}/{split.path}"
        request = Request(inner.method, path, parse_qs(split.query), inner.headers, inner.body)
        handler = self._match(request)
        if handler is None or not path.startswith(API):
            answer = odata_error(404, "0x80060888", f"no route for {inner.method} {path}")
        else:
            answer = handler(request)
        body = answer.encoded() if answer.body not in (None, b"") else b""
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-type"}
        return odata.InnerResponse(answer.status, body, headers, inner.content_id)

    # -- plug-in webhooks --------------------------------------------------------------
    def send_webhook(self, url: str, entity_set: str, row_id: str, *,
                     message: str = "Update", key: str | None = None,
                     header: str = "x-billbridge-key", auth: str = "HttpHeader",
                     timeout: float = 60.0) -> httpx.Response:
        """POST a ``RemoteExecutionContext`` for one row, as a registered
        service endpoint step does. ``auth`` is ``HttpHeader`` (``header`` =
        ``key``), ``WebhookKey`` (``?code=key``) or none."""
        logical = TABLES[entity_set].logical_name
        correlation = str(uuid.uuid4())
        with self.lock:
            row = dict(self.rows[entity_set].get(row_id.lower()) or {})
        attributes = [{"key": k, "value": v} for k, v in row.items()]
        context = {
            "BusinessUnitId": str(uuid.uuid4()), "CorrelationId": correlation, "Depth": 1,
            "InitiatingUserId": str(uuid.uuid4()), "IsExecutingOffline": False,
            "MessageName": message, "Mode": 1, "OperationCreatedOn":
                f"/Date({int(self.now().timestamp() * 1000)})/",
            "OrganizationId": str(uuid.uuid4()), "OrganizationName": "billbridge",
            "PrimaryEntityId": row_id, "PrimaryEntityName": logical, "Stage": 40,
            "InputParameters": [{"key": "Target", "value": {
                "__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
                "Attributes": attributes, "Id": row_id, "LogicalName": logical}}],
            "PostEntityImages": [], "PreEntityImages": [], "SharedVariables": [],
        }
        headers = {"x-ms-dynamics-organization": "billbridge.crm.dynamics.com",
                   "x-ms-dynamics-entity-name": logical,
                   "x-ms-dynamics-request-name": message,
                   "x-ms-correlation-request-id": correlation,
                   "Content-Type": "application/json"}
        params: dict[str, str] = {}
        if auth == "HttpHeader" and key is not None:
            headers[header] = key
        elif auth == "WebhookKey" and key is not None:
            params["code"] = key
        return httpx.post(url, content=decimal_json(context), headers=headers,
                          params=params, timeout=timeout)


def stamp(moment: datetime) -> str:
    """``modifiedon`` as the emulator writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def later(text: str, seconds: float) -> str:
    return stamp(datetime.fromisoformat(text.replace("Z", "+00:00")) + timedelta(seconds=seconds))


__all__ = ["API", "GUID", "MAX_BATCH", "MAX_PAGE", "TABLES", "DataverseEmulator", "later", "stamp"]
