"""An emulator of the subset of HubSpot's CRM API billbridge uses, with
HubSpot's paths, JSON shapes, errors and limits, good enough for the official
``hubspot-api-client``.

Served: ``GET /crm/v3/objects/{type}`` (``limit``/``after``/``properties``),
``GET|PATCH /crm/v3/objects/{type}/{id}``, ``POST /crm/v3/objects/{type}/search``
(filterGroups, sorts, ``after``, the 10,000-result cap), ``POST
/crm/v3/objects/{type}/batch/read|update`` (≤ 100 inputs, 207 multi-status
naming missing ids), ``GET /crm/v4/objects/{from}/{id}/associations/{to}``,
``POST /oauth/v1/token`` (refresh_token grant). Every answer carries the
``X-HubSpot-RateLimit-*`` headers; past the rolling limit it answers 429
``TEN_SECONDLY_ROLLING``, past the daily one 429 ``DAILY``. Faults come from
the base class.
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import httpx

from billbridge.connectors.hubspot.mapping import ms_to_iso, to_ms
from billbridge.connectors.hubspot.webhooks import sign_v3
from billbridge.emulation.limits import admit, max_in_window
from billbridge.emulation.server import ADMIN_PREFIX, EmulatorServer, Request, Response

DEFAULT_PROPERTIES = {
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage",
              "hs_lastmodifieddate", "hs_object_id", "pipeline"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                 "lastname"),
}
READ_ONLY = frozenset({"hs_object_id", "hs_lastmodifieddate", "createdate",
                       "lastmodifieddate"})
DATE_PROPERTIES = frozenset({"hs_lastmodifieddate", "createdate", "closedate",
                             "lastmodifieddate"})
OBJECT_TYPE_NAMES = {"deals": "DEAL", "companies": "COMPANY", "contacts": "CONTACT"}
DEAL_TO_COMPANY = 341  # HubSpot-defined association type ids
COMPANY_TO_DEAL = 342
PRIMARY_DEAL_TO_COMPANY = 5
PRIMARY_COMPANY_TO_DEAL = 6


def hs_error(status: int, category: str, message: str, **extra: Any) -> Response:
    return Response(status, {"status": "error", "message": message,
                             "correlationId": str(uuid.uuid4()), "category": category, **extra})


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HubSpotEmulator(EmulatorServer):
    def __init__(self, *, token: str | None = "hubspot-token", port: int = 0,
                 rate_limit: int = 100, window_seconds: float = 10.0,
                 daily_limit: int = 250_000, search_cap: int = 10_000,
                 client_id: str = "client-id", client_secret: str = "client-secret",
                 refresh_token: str = "refresh-token") -> None:
        super().__init__(port=port, token=None)  # auth is HubSpot-shaped, below
        self.tokens: set[str] = {token} if token else set()
        self.auth_required = token is not None
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self.daily_limit = daily_limit
        self.daily_remaining = daily_limit
        self.search_cap = search_cap
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_tokens = {refresh_token}
        self.refreshes = 0
        self.max_batch = 100
        self.max_search_limit = 200
        self.portal_id = 12345678
        # (monotonic time, method, path, status) of every non-admin request.
        self.requests: list[tuple[float, str, str, int]] = []
        self._window: collections.deque[float] = collections.deque()
        self._objects: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in DEFAULT_PROPERTIES}
        self._stamps: dict[tuple[str, str], int] = {}
        self._associations: set[tuple[str, str, str, str, int]] = set()
        self._ids = itertools.count(1001)
        self._clock_ms = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)
        self.routes([
            ("GET /crm/v3/objects/{type}", self._list),
            ("POST /crm/v3/objects/{type}/search", self._search),
            ("POST /crm/v3/objects/{type}/batch/read", self._batch_read),
            ("POST /crm/v3/objects/{type}/batch/update", self._batch_update),
            ("GET /crm/v3/objects/{type}/{id}", self._get),
            ("PATCH /crm/v3/objects/{type}/{id}", self._patch),
            ("GET /crm/v4/objects/{type}/{id}/associations/{to}", self._associations_route),
            ("POST /oauth/v1/token", self._oauth_token),
            ("POST /_emulator/seed", self._admin_seed),
        ])

    def start(self) -> HubSpotEmulator:
        """Start serving; answers go out with TCP_NODELAY, so a response split
        into headers and body is not held back 40 ms by Nagle + delayed ACK."""
        super().start()
        httpd = self._httpd
        if httpd is not None:
            base = cast(type, httpd.RequestHandlerClass)
            httpd.RequestHandlerClass = type("NoDelayHandler", (base,),
                                             {"disable_nagle_algorithm": True})
        return self

    # -- state -------------------------------------------------------------------
    def _tick(self) -> int:
        self._clock_ms = max(self._clock_ms + 1, time.time_ns() // 1_000_000)
        return self._clock_ms

    def _store(self, object_type: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update one object from a fixture: ``{"id", "properties"}``
        or a flat dict of properties with ``id``; ``hs_lastmodifieddate`` may be
        given (ms or ISO) to pin the stamp."""
        props = dict(record.get("properties") or
                     {k: v for k, v in record.items() if k not in ("id", "archived")})
        object_id = str(record.get("id") or props.get("hs_object_id") or next(self._ids))
        pinned = to_ms(props.pop("hs_lastmodifieddate", None))
        stamp = pinned if pinned is not None else self._tick()
        existing = self._objects[object_type].get(object_id)
        values = {**(existing["properties"] if existing else {}),
                  **{k: None if v is None else str(v) for k, v in props.items()}}
        created = existing["createdAt"] if existing else ms_to_iso(stamp)
        values.setdefault("createdate", created)
        values["hs_object_id"] = object_id
        values["hs_lastmodifieddate"] = ms_to_iso(stamp)
        stored = {"id": object_id, "properties": values, "createdAt": created,
                  "updatedAt": ms_to_iso(stamp), "archived": False}
        self._objects[object_type][object_id] = stored
        self._stamps[(object_type, object_id)] = stamp
        return stored

    def seed(self, *, companies: Iterable[Mapping[str, Any]] = (),
             deals: Iterable[Mapping[str, Any]] = (),
             associations: Iterable[tuple[str, str] | Mapping[str, Any]] = ()) -> None:
        """Load fixtures; associations are ``(deal_id, company_id)`` pairs or
        ``{"deal", "company", "primary"}`` (primary by default)."""
        with self.lock:
            for company in companies:
                self._store("companies", company)
            for deal in deals:
                self._store("deals", deal)
            for link in associations:
                if isinstance(link, Mapping):
                    self.associate(str(link["deal"]), str(link["company"]),
                                   primary=bool(link.get("primary", True)))
                else:
                    self.associate(str(link[0]), str(link[1]))

    def associate(self, deal_id: str, company_id: str, *, primary: bool = True) -> None:
        with self.lock:
            self._associations.add(("deals", deal_id, "companies", company_id, DEAL_TO_COMPANY))
            self._associations.add(("companies", company_id, "deals", deal_id, COMPANY_TO_DEAL))
            if primary:
                self._associations.add(("deals", deal_id, "companies", company_id,
                                        PRIMARY_DEAL_TO_COMPANY))
                self._associations.add(("companies", company_id, "deals", deal_id,
                                        PRIMARY_COMPANY_TO_DEAL))

    def update(self, object_type: str, object_id: str, **properties: Any) -> dict[str, Any]:
        """Change properties as a HubSpot user would (a new modification stamp)."""
        with self.lock:
            return dict(self._store(object_type, {"id": object_id, "properties": properties}))

    def archive(self, object_type: str, object_id: str) -> None:
        with self.lock:
            self._objects[object_type][object_id]["archived"] = True

    def get(self, object_type: str, object_id: str) -> dict[str, Any]:
        with self.lock:
            found = self._objects[object_type][object_id]
            return {**found, "properties": dict(found["properties"])}

    # -- HubSpot's door: auth, limits, headers, error shapes ------------------------
    def dispatch(self, request: Request, *, drop: Callable[[], None]) -> Response | None:
        if request.path.startswith(ADMIN_PREFIX) or request.path == "/oauth/v1/token":
            return super().dispatch(request, drop=drop)
        now = time.monotonic()
        refused: Response | None = None
        with self.lock:
            auth = request.headers.get("authorization", "")
            if self.auth_required and (not auth.startswith("Bearer ")
                                       or auth[7:] not in self.tokens):
                refused = hs_error(401, "INVALID_AUTHENTICATION",
                                   "Authentication credentials not found. This API supports "
                                   "OAuth 2.0 authentication.")
            elif self.daily_remaining <= 0:
                refused = hs_error(429, "RATE_LIMITS", "You have reached your daily limit.",
                                   errorType="RATE_LIMIT", policyName="DAILY")
            else:
                wait = admit(self._window, self.rate_limit, self.window_seconds, now)
                if wait is not None:
                    refused = hs_error(
                        429, "RATE_LIMITS", "You have reached your ten_secondly_rolling limit.",
                        errorType="RATE_LIMIT", policyName="TEN_SECONDLY_ROLLING")
                    refused.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                else:
                    self.daily_remaining -= 1
        response = refused or super().dispatch(request, drop=drop)
        if response is not None:
            response = self._hubspot_shaped(response)
            with self.lock:
                self.requests.append((now, request.method, request.path, response.status))
                response.headers.update({
                    "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                    "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_remaining)),
                    "X-HubSpot-RateLimit-Max": str(self.rate_limit),
                    "X-HubSpot-RateLimit-Remaining": str(max(0, self.rate_limit
                                                             - len(self._window))),
                    "X-HubSpot-RateLimit-Interval-Milliseconds":
                        str(int(self.window_seconds * 1000)),
                })
        return response

    @staticmethod
    def _hubspot_shaped(response: Response) -> Response:
        """The base class's ``{"error": {...}}`` answers (faults, 404) in HubSpot's shape."""
        body = response.body
        if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
            return response
        message = str(body["error"].get("message"))
        if response.status == 429:
            shaped = hs_error(429, "RATE_LIMITS",
                              "You have reached your ten_secondly_rolling limit.",
                              errorType="RATE_LIMIT", policyName="TEN_SECONDLY_ROLLING")
        elif response.status == 404:
            shaped = hs_error(404, "OBJECT_NOT_FOUND", message)
        else:
            shaped = hs_error(response.status, "INTERNAL_ERROR"
                              if response.status >= 500 else "VALIDATION_ERROR", message)
        shaped.headers.update(response.headers)
        return shaped

    def requests_to(self, prefix: str = "/crm/") -> list[tuple[float, str, str, int]]:
        with self.lock:
            return [r for r in self.requests if r[2].startswith(prefix)]

    def max_in_window(self, window: float | None = None, prefix: str = "/crm/") -> int:
        """The most requests (answered or not) seen in any rolling window."""
        return max_in_window((r[0] for r in self.requests_to(prefix)),
                             self.window_seconds if window is None else window)

    # -- helpers -------------------------------------------------------------------
    def _type(self, request: Request) -> str | None:
        object_type = request.params.get("type", "")
        return object_type if object_type in self._objects else None

    def _view(self, record: Mapping[str, Any], object_type: str,
              properties: list[str] | None) -> dict[str, Any]:
        names = properties or list(DEFAULT_PROPERTIES[object_type])
        names = list(dict.fromkeys([*names, "createdate", "hs_lastmodifieddate",
                                    "hs_object_id"]))
        props = {n: record["properties"].get(n) for n in names}
        return {"id": record["id"], "properties": props, "createdAt": record["createdAt"],
                "updatedAt": record["updatedAt"], "archived": record["archived"]}

    @staticmethod
    def _property_list(request: Request) -> list[str] | None:
        values = request.query.get("properties")
        if not values:
            return None
        return [p for v in values for p in v.split(",") if p]

    def _sorted(self, object_type: str) -> list[dict[str, Any]]:
        return sorted((r for r in self._objects[object_type].values() if not r["archived"]),
                      key=lambda r: (len(r["id"]), r["id"]))

    def _batch_answer(self, results: list[dict[str, Any]], errors: list[dict[str, Any]],
                      started: str) -> Response:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results,
                                "startedAt": started, "completedAt": _now_iso()}
        if errors:
            body.update({"numErrors": len(errors), "errors": errors})
            return Response(207, body)
        return Response(200, body)

    def _not_found(self, object_type: str, ids: list[str], verb: str) -> dict[str, Any]:
        name = OBJECT_TYPE_NAMES[object_type]
        return {"status": "error", "category": "OBJECT_NOT_FOUND",
                "message": f"Could not {verb} some {name} objects, they may be deleted or not "
                           "exist. Check that ids are valid.",
                "context": {"ids": ids}}

    # -- routes ----------------------------------------------------------------------
    def _list(self, request: Request) -> Response:
        object_type = self._type(request)
        if object_type is None:
            return hs_error(404, "OBJECT_NOT_FOUND", "Unknown object type")
        try:
            limit = int(request.arg("limit", "10") or 10)
            offset = int(request.arg("after", "0") or 0)
        except ValueError:
            return hs_error(400, "VALIDATION_ERROR", "limit and after must be integers")
        if not 1 <= limit <= 100:
            return hs_error(400, "VALIDATION_ERROR", "limit must be between 1 and 100")
        with self.lock:
            rows = self._sorted(object_type)
            chunk = rows[offset:offset + limit]
            body: dict[str, Any] = {"results": [self._view(r, object_type,
                                                           self._property_list(request))
                                                for r in chunk]}
        if offset + limit < len(rows):
            body["paging"] = {"next": {"after": str(offset + limit),
                                       "link": f"?after={offset + limit}"}}
        return Response(200, body)

    def _get(self, request: Request) -> Response:
        object_type = self._type(request)
        with self.lock:
            found = self._objects.get(object_type or "", {}).get(request.params["id"])
            if object_type is None or found is None or found["archived"]:
                return hs_error(404, "OBJECT_NOT_FOUND", "resource not found")
            return Response(200, self._view(found, object_type, self._property_list(request)))

    def _patch(self, request: Request) -> Response:
        object_type = self._type(request)
        body = request.json() or {}
        with self.lock:
            if object_type is None or request.params["id"] not in self._objects[object_type]:
                return hs_error(404, "OBJECT_NOT_FOUND", "resource not found")
            problem = self._validate_properties(body.get("properties"))
            if problem:
                return hs_error(400, "VALIDATION_ERROR", problem)
            record = self._apply_update(object_type, request.params["id"], body["properties"])
            return Response(200, self._view(record, object_type, None))

    @staticmethod
    def _validate_properties(props: Any) -> str | None:
        if not isinstance(props, dict):
            return "properties must be an object"
        bad = sorted(k for k in props if k in READ_ONLY)
        if bad:
            return ("Property values were not valid: " + ", ".join(
                f'{{"isValid":false,"message":"{k} is a read only property; its value cannot '
                f'be set.","error":"READ_ONLY_VALUE","name":"{k}"}}' for k in bad))
        return None

    def _apply_update(self, object_type: str, object_id: str,
                      props: Mapping[str, Any]) -> dict[str, Any]:
        record = self._objects[object_type][object_id]
        values = {k: None if v is None else str(v) for k, v in props.items()}
        if all(record["properties"].get(k) == v for k, v in values.items()):
            return record  # nothing changes: no new version, no new modification stamp
        return self._store(object_type, {"id": object_id, "properties": values})

    def _matches(self, record: Mapping[str, Any], groups: list[Any]) -> bool:
        if not groups:
            return True
        return any(all(self._test(record, f) for f in (g.get("filters") or [])) for g in groups)

    @staticmethod
    def _test(record: Mapping[str, Any], flt: Mapping[str, Any]) -> bool:
        name = str(flt.get("propertyName"))
        operator = str(flt.get("operator", "EQ"))
        actual = record["properties"].get(name)
        if operator == "HAS_PROPERTY":
            return actual not in (None, "")
        if operator == "NOT_HAS_PROPERTY":
            return actual in (None, "")
        if actual is None:
            return False

        def norm(value: Any) -> Any:
            if name in DATE_PROPERTIES:
                return to_ms(value)
            try:
                return float(value)
            except (TypeError, ValueError):
                return str(value).lower()

        left = norm(actual)
        if operator in ("IN", "NOT_IN"):
            inside = left in {norm(v) for v in flt.get("values") or []}
            return inside if operator == "IN" else not inside
        right = norm(flt.get("value"))
        if left is None or right is None or type(left) is not type(right):
            return operator == "NEQ"
        tests: dict[str, Callable[[Any, Any], bool]] = {
            "EQ": lambda a, b: a == b, "NEQ": lambda a, b: a != b,
            "GT": lambda a, b: a > b, "GTE": lambda a, b: a >= b,
            "LT": lambda a, b: a < b, "LTE": lambda a, b: a <= b,
        }
        test = tests.get(operator)
        return bool(test(left, right)) if test else False

    def _search(self, request: Request) -> Response:
        object_type = self._type(request)
        if object_type is None:
            return hs_error(404, "OBJECT_NOT_FOUND", "Unknown object type")
        body = request.json() or {}
        try:
            limit = int(body.get("limit") or 10)
            offset = int(body.get("after") or 0)
        except (TypeError, ValueError):
            return hs_error(400, "VALIDATION_ERROR", "limit and after must be integers")
        if not 1 <= limit <= self.max_search_limit:
            return hs_error(400, "VALIDATION_ERROR",
                            f"limit must be between 1 and {self.max_search_limit}")
        if offset >= self.search_cap:
            return hs_error(400, "VALIDATION_ERROR",
                            f"The search cannot page past {self.search_cap} results; "
                            "narrow the query.")
        sorts: list[tuple[str, bool]] = []
        for entry in body.get("sorts") or []:
            if isinstance(entry, str):
                try:
                    entry = json.loads(entry)
                except ValueError:
                    entry = {"propertyName": entry.lstrip("-"),
                             "direction": "DESCENDING" if entry.startswith("-") else "ASCENDING"}
            sorts.append((str(entry.get("propertyName")),
                          str(entry.get("direction", "ASCENDING")).upper() == "DESCENDING"))
        with self.lock:
            rows = [r for r in self._sorted(object_type)
                    if self._matches(r, body.get("filterGroups") or [])]
            for name, descending in reversed(sorts):
                rows.sort(key=functools.partial(self._sort_key, name=name), reverse=descending)
            total = len(rows)
            chunk = rows[offset:offset + limit]
            answer: dict[str, Any] = {
                "total": total,
                "results": [self._view(r, object_type, body.get("properties")) for r in chunk]}
        if offset + limit < total:  # offered even past the cap, which then answers 400
            answer["paging"] = {"next": {"after": str(offset + limit)}}
        return Response(200, answer)

    @staticmethod
    def _sort_key(record: Mapping[str, Any], name: str) -> tuple[int, Any, int, str]:
        value = record["properties"].get(name)
        key: Any = to_ms(value) if name in DATE_PROPERTIES else value
        if key is None:
            return (1, 0, len(record["id"]), record["id"])
        if not isinstance(key, int):
            try:
                key = float(key)
            except (TypeError, ValueError):
                key = 0
        return (0, key, len(record["id"]), record["id"])

    def _batch_inputs(self, request: Request) -> tuple[str, list[dict[str, Any]]] | Response:
        object_type = self._type(request)
        if object_type is None:
            return hs_error(404, "OBJECT_NOT_FOUND", "Unknown object type")
        body = request.json() or {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, dict) and i.get("id")
                                                   for i in inputs):
            return hs_error(400, "VALIDATION_ERROR", "inputs must be a list of {id, ...}")
        if len(inputs) > self.max_batch:
            return hs_error(400, "VALIDATION_ERROR",
                            f"Batch size {len(inputs)} exceeds the limit of {self.max_batch}")
        return object_type, inputs

    def _batch_read(self, request: Request) -> Response:
        started = _now_iso()
        parsed = self._batch_inputs(request)
        if isinstance(parsed, Response):
            return parsed
        object_type, inputs = parsed
        properties = (request.json() or {}).get("properties")
        results, missing = [], []
        with self.lock:
            for item in inputs:
                found = self._objects[object_type].get(str(item["id"]))
                if found is None or found["archived"]:
                    missing.append(str(item["id"]))
                else:
                    results.append(self._view(found, object_type, properties))
        errors = [self._not_found(object_type, missing, "get")] if missing else []
        return self._batch_answer(results, errors, started)

    def _batch_update(self, request: Request) -> Response:
        started = _now_iso()
        parsed = self._batch_inputs(request)
        if isinstance(parsed, Response):
            return parsed
        object_type, inputs = parsed
        ids = [str(i["id"]) for i in inputs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            return hs_error(400, "VALIDATION_ERROR",
                            f"Duplicate IDs found in batch input: {duplicates}. IDs must be "
                            "unique")
        for item in inputs:
            problem = self._validate_properties(item.get("properties"))
            if problem:
                return hs_error(400, "VALIDATION_ERROR", problem)
        results, missing = [], []
        with self.lock:
            for item in inputs:
                object_id = str(item["id"])
                if object_id not in self._objects[object_type] \
                        or self._objects[object_type][object_id]["archived"]:
                    missing.append(object_id)
                    continue
                record = self._apply_update(object_type, object_id, item["properties"])
                results.append(self._view(record, object_type, list(item["properties"])))
        errors = [self._not_found(object_type, missing, "update")] if missing else []
        return self._batch_answer(results, errors, started)

    def _associations_route(self, request: Request) -> Response:
        from_type, object_id, to_type = (request.params["type"], request.params["id"],
                                         request.params["to"])
        if from_type not in self._objects or to_type not in self._objects:
            return hs_error(400, "VALIDATION_ERROR", "Unknown object type")
        with self.lock:
            targets: dict[str, list[int]] = {}
            for src_type, src, dst_type, dst, type_id in sorted(self._associations):
                if (src_type, src, dst_type) == (from_type, object_id, to_type):
                    targets.setdefault(dst, []).append(type_id)
        rows = [{"toObjectId": int(dst) if dst.isdigit() else dst,
                 "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": t,
                                       "label": "Primary" if t in (5, 6) else None}
                                      for t in sorted(types)]}
                for dst, types in sorted(targets.items())]
        try:
            limit = int(request.arg("limit", "500") or 500)
            offset = int(request.arg("after", "0") or 0)
        except ValueError:
            return hs_error(400, "VALIDATION_ERROR", "limit and after must be integers")
        body: dict[str, Any] = {"results": rows[offset:offset + limit]}
        if offset + limit < len(rows):
            body["paging"] = {"next": {"after": str(offset + limit)}}
        return Response(200, body)

    def _oauth_token(self, request: Request) -> Response:
        from urllib.parse import parse_qs

        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return Response(400, {"status": "BAD_GRANT_TYPE",
                                  "message": "grant_type must be refresh_token here"})
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id,
                                                                  self.client_secret):
            return Response(400, {"status": "BAD_CLIENT_ID", "message": "missing or unknown "
                                  "client id or secret"})
        with self.lock:
            if form.get("refresh_token") not in self.refresh_tokens:
                return Response(400, {"status": "BAD_REFRESH_TOKEN",
                                      "message": "missing or unknown refresh token"})
            access = f"oauth-{uuid.uuid4().hex}"
            self.tokens.add(access)
            self.refreshes += 1
        return Response(200, {"token_type": "bearer", "refresh_token": form["refresh_token"],
                              "access_token": access, "expires_in": 1800})

    def _admin_seed(self, request: Request) -> Response:
        body = request.json() or {}
        self.seed(companies=body.get("companies") or [], deals=body.get("deals") or [],
                  associations=[tuple(a) if isinstance(a, list) else a
                                for a in body.get("associations") or []])
        return Response(200, {"seeded": True})

    # -- webhooks --------------------------------------------------------------------
    def send_webhooks(self, url: str, notifications: list[Mapping[str, Any]], *,
                      client_secret: str, timestamp_ms: int | None = None,
                      signature: str | None = None) -> httpx.Response:
        """POST one delivery (a JSON array) signed like HubSpot (v3)."""
        now = time.time_ns() // 1_000_000
        body_items = []
        for index, note in enumerate(notifications):
            body_items.append({"eventId": next(self._ids), "subscriptionId": 4242,
                               "portalId": self.portal_id, "appId": 1160452,
                               "occurredAt": now, "attemptNumber": 0,
                               "changeSource": "CRM", "sourceId": f"userId:{index}", **note})
        body = json.dumps(body_items).encode()
        stamp = str(timestamp_ms if timestamp_ms is not None else now)
        with httpx.Client(timeout=10) as client:
            return client.post(url, content=body, headers={
                "Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
                "X-HubSpot-Signature-v3": signature or sign_v3(client_secret, "POST", url,
                                                               body, stamp),
                "X-HubSpot-Signature-Version": "v3"})
