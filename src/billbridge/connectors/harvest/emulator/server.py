"""An emulator of the subset of Harvest's API v2 billbridge uses, with
Harvest's paths, field names, JSON types, pagination, errors and limits.

Numbers (hours, costs) go out as JSON numbers with every digit they were
given (a Decimal seeds one exactly).

Served under ``/v2``: ``users/me``, ``users``, ``clients`` (GET, POST),
``projects`` (GET, POST; ``projects/{id}`` GET, PATCH), ``tasks``,
``time_entries`` and ``expenses`` (lists and ``/{id}``). Like Harvest it
checks the bearer token *and* ``Harvest-Account-Id`` (401 ``invalid_token``
otherwise), wants a ``User-Agent``, refuses ``per_page`` outside 1-2000 with
422, and answers 429 with ``Retry-After`` past 100 requests in any 15
seconds. Time entries and expenses are sorted by ``spent_date``, newest
first, in numbered pages (``page``; a deletion shifts the pages after it, as
on a live offset list); clients, projects, tasks and users newest first with
a cursor in ``links.next``. Every list carries ``per_page``,
``total_pages``, ``total_entries``, ``next_page``, ``previous_page``,
``page`` and ``links``. Fault injection comes from the base class.
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from billbridge.emulation.limits import admit, max_in_window
from billbridge.emulation.server import (
    ADMIN_PREFIX,
    DecimalResponse,
    EmulatorServer,
    Request,
    Response,
    in_shape,
)

PER_PAGE_MAX = 2000
APPROVED = "Item Approved and Locked for this Time Period"
UNAUTHORISED = {"error": "invalid_token", "error_description": "The access token provided is "
                "expired, revoked, malformed or invalid for other reasons."}
BILL_BY = frozenset({"Project", "Tasks", "People", "none"})
BUDGET_BY = frozenset({"project", "project_cost", "task", "task_fees", "person", "none"})
PROJECT_FIELDS = ("client_id", "name", "code", "is_active", "is_billable", "is_fixed_fee",
                  "bill_by", "hourly_rate", "budget", "budget_by", "budget_is_monthly",
                  "notify_when_over_budget", "over_budget_notification_percentage",
                  "show_budget_to_all", "cost_budget", "cost_budget_include_expenses", "fee",
                  "notes", "starts_on", "ends_on")
NUMBERED = ("time_entries", "expenses")  # the others page with a cursor
FILTERS: dict[str, tuple[str, ...]] = {
    "time_entries": ("user_id", "client_id", "project_id", "task_id", "is_billed",
                     "updated_since", "from", "to"),
    "expenses": ("user_id", "client_id", "project_id", "is_billed", "updated_since", "from",
                 "to"),
    "projects": ("is_active", "client_id", "updated_since"),
    "clients": ("is_active", "updated_since"),
    "tasks": ("is_active", "updated_since"),
    "users": ("is_active", "updated_since"),
}


def harvest_error(status: int, message: str) -> Response:
    """The documented error payload: ``{"code", "message"}``."""
    return Response(status, {"code": status, "message": message})


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def _id_of(value: Any) -> Any:
    return value.get("id") if isinstance(value, Mapping) else value


class HarvestEmulator(EmulatorServer):
    def __init__(self, *, port: int = 0, token: str | None = "harvest-token",
                 account_id: str = "123456", rate_limit: int = 100,
                 window_seconds: float = 15.0) -> None:
        super().__init__(port=port, token=None)  # auth is Harvest-shaped, below
        self.access_token = token
        self.account_id = account_id
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        # (monotonic time, method, path, query, status) of every non-admin request.
        self.requests: list[tuple[float, str, str, dict[str, str], int]] = []
        self._window: collections.deque[float] = collections.deque()
        self._data: dict[str, dict[int, dict[str, Any]]] = {
            name: {} for name in ("users", "clients", "projects", "tasks", "time_entries",
                                  "expenses")}
        self._ids = itertools.count(700_000_001)
        self._clock = int(time.time())
        self.me: int | None = None  # the user the token belongs to (first seeded user)
        self.routes([
            ("GET /v2/users/me", self._me),
            ("GET /v2/{resource}", self._list),
            ("POST /v2/clients", self._create_client),
            ("POST /v2/projects", self._create_project),
            ("PATCH /v2/projects/{id}", self._update_project),
            ("GET /v2/{resource}/{id}", self._get),
            ("POST /_emulator/seed", self._admin_seed),
        ])

    # -- time ----------------------------------------------------------------------
    def _now(self) -> str:
        """Now, to the second (Harvest's resolution); never before the last tick."""
        self._clock = max(self._clock, int(time.time()))
        return _iso(self._clock)

    def _tick(self) -> str:
        """A change's stamp: strictly after the last, as one user's edits are."""
        self._clock = max(self._clock + 1, int(time.time()))
        return _iso(self._clock)

    # -- fixtures and user actions ----------------------------------------------------
    def seed(self, *, users: Iterable[Mapping[str, Any]] = (),
             clients: Iterable[Mapping[str, Any]] = (),
             projects: Iterable[Mapping[str, Any]] = (),
             tasks: Iterable[Mapping[str, Any]] = (),
             time_entries: Iterable[Mapping[str, Any]] = (),
             expenses: Iterable[Mapping[str, Any]] = ()) -> None:
        """Load records in Harvest's own shape (the documented examples load
        as they are). Nested references (``user``, ``project``, ``client``,
        ``task``) to records not loaded yet create them from their id and name."""
        with self.lock:
            for user in users:
                self._put_user(user)
            for client in clients:
                self._put_client(client)
            for project in projects:
                self._put_project(project)
            for task in tasks:
                self._put_task(task)
            for entry in time_entries:
                self._put_entry("time_entries", entry)
            for expense in expenses:
                self._put_entry("expenses", expense)

    def _new_id(self, given: Any) -> int:
        return int(given) if given is not None else next(self._ids)

    def _put_user(self, user: Mapping[str, Any]) -> dict[str, Any]:
        first, _, last = str(user.get("name") or "").partition(" ")
        record: dict[str, Any] = {
            "id": self._new_id(user.get("id")), "first_name": first, "last_name": last,
            "email": None, "telephone": "", "timezone": "Eastern Time (US & Canada)",
            "has_access_to_all_future_projects": False, "is_contractor": False,
            "is_active": True, "weekly_capacity": 126000, "default_hourly_rate": 100.0,
            "cost_rate": 50.0, "roles": [], "access_roles": ["member"], "avatar_url": "",
            "created_at": self._now(), "updated_at": self._now()}
        record.update({k: v for k, v in user.items() if k != "name"})
        record["email"] = record["email"] or f"{record['first_name'].lower()}@example.com"
        self._data["users"][record["id"]] = record
        if self.me is None:
            self.me = record["id"]
        return record

    def _put_client(self, client: Mapping[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"id": self._new_id(client.get("id")),
                                  "name": client.get("name"),
                                  "is_active": True, "address": None,
                                  "statement_key": "0" * 32, "created_at": self._now(),
                                  "updated_at": self._now(), "currency": "USD"}
        record.update(client)
        self._data["clients"][record["id"]] = record
        return record

    def _put_project(self, project: Mapping[str, Any]) -> dict[str, Any]:
        client = project.get("client") or {}
        client_id = project.get("client_id") or _id_of(client)
        if client_id not in self._data["clients"]:
            client_id = self._put_client({**client, **({"id": client_id} if client_id else {}),
                                          "name": client.get("name") or "Client"})["id"]
        record: dict[str, Any] = {
            "id": self._new_id(project.get("id")), "name": project.get("name"), "code": None,
            "is_active": True, "bill_by": "none", "budget": None, "budget_by": "none",
            "budget_is_monthly": False, "notify_when_over_budget": False,
            "over_budget_notification_percentage": 80.0, "over_budget_notification_date": None,
            "show_budget_to_all": False, "created_at": self._now(), "updated_at": self._now(),
            "starts_on": None, "ends_on": None, "is_billable": True, "is_fixed_fee": False,
            "notes": "", "cost_budget": None, "cost_budget_include_expenses": False,
            "hourly_rate": None, "fee": None}
        record.update({k: v for k, v in project.items() if k not in ("client", "client_id")})
        record["client_id"] = client_id
        self._data["projects"][record["id"]] = record
        return record

    def _put_task(self, task: Mapping[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"id": self._new_id(task.get("id")), "name": task.get("name"),
                  "billable_by_default": True, "default_hourly_rate": 100.0,
                  "is_default": False, "is_active": True, "created_at": self._now(),
                  "updated_at": self._now()}
        record.update(task)
        self._data["tasks"][record["id"]] = record
        return record

    def _ref(self, resource: str, given: Any,
             put: Callable[[Mapping[str, Any]], dict[str, Any]],
             extra: Mapping[str, Any] | None = None) -> int:
        """The id of a nested reference, creating the record when it is new."""
        ref_id = _id_of(given)
        if ref_id in self._data[resource]:
            return int(ref_id)
        name = given.get("name") if isinstance(given, Mapping) else None
        return int(put({**({"id": ref_id} if ref_id else {}),
                        "name": name or f"{resource} {ref_id}", **(extra or {})})["id"])

    def _put_entry(self, resource: str, entry: Mapping[str, Any]) -> dict[str, Any]:
        """A time entry or expense: references are kept as ids and rendered
        from the referenced records, so a renamed project shows its new name."""
        stamp = entry.get("updated_at") or self._now()
        record: dict[str, Any] = {"created_at": entry.get("created_at") or stamp, "notes": None,
                                  "is_closed": False, "is_locked": False, "locked_reason": None,
                                  "is_billed": False, "billable": True, "invoice": None}
        if resource == "time_entries":
            record.update(hours_without_timer=entry.get("hours"),
                          rounded_hours=entry.get("hours"), timer_started_at=None,
                          started_time=None, ended_time=None, is_running=False,
                          external_reference=None, budgeted=True, billable_rate=100.0,
                          cost_rate=50.0)
        else:
            record.update(units=1.0, receipt=None,
                          expense_category={"id": 4195926, "name": "Meals",
                                            "unit_price": None, "unit_name": None})
        record.update({k: v for k, v in entry.items()
                       if k not in ("user", "project", "client", "task")})
        record["id"] = self._new_id(entry.get("id"))
        record["updated_at"] = stamp
        record["user_id"] = self._ref("users", entry.get("user") or entry.get("user_id"),
                                      self._put_user)
        client = entry.get("client") or {}
        record["project_id"] = self._ref(
            "projects", entry.get("project") or entry.get("project_id"), self._put_project,
            {"client": client})
        if resource == "time_entries":
            record["task_id"] = self._ref("tasks", entry.get("task") or entry.get("task_id"),
                                          self._put_task)
        self._data[resource][record["id"]] = record
        return record

    def log_time(self, *, user: int, project: int, task: int, spent_date: str,
                 hours: float | Decimal,
                 notes: str = "", approved: bool = False, billable: bool = True,
                 entry_id: int | None = None, updated_at: str | None = None) -> dict[str, Any]:
        """A consultant logs time (approved: as their manager already approved it)."""
        with self.lock:
            stamp = updated_at or self._tick()
            record = self._put_entry("time_entries", {
                "id": entry_id, "user_id": user, "project_id": project, "task_id": task,
                "spent_date": spent_date, "hours": hours, "notes": notes, "billable": billable,
                "updated_at": stamp, "created_at": stamp})
            if approved:
                self._approve("time_entries", [record["id"]], True, stamp)
            return self.render("time_entries", record["id"])

    def log_expense(self, *, user: int, project: int, spent_date: str, total_cost: float | Decimal,
                    category: str = "Meals", approved: bool = False, billable: bool = True,
                    expense_id: int | None = None) -> dict[str, Any]:
        with self.lock:
            stamp = self._tick()
            record = self._put_entry("expenses", {
                "id": expense_id, "user_id": user, "project_id": project,
                "spent_date": spent_date, "total_cost": total_cost, "billable": billable,
                "expense_category": {"id": 4195926, "name": category, "unit_price": None,
                                     "unit_name": None},
                "updated_at": stamp, "created_at": stamp})
            if approved:
                self._approve("expenses", [record["id"]], True, stamp)
            return self.render("expenses", record["id"])

    def _approve(self, resource: str, ids: Iterable[int], closed: bool, stamp: str) -> None:
        for record_id in ids:
            self._data[resource][record_id].update(
                is_closed=closed, is_locked=closed, locked_reason=APPROVED if closed else None,
                updated_at=stamp)

    def approve(self, resource: str, *ids: int) -> None:
        """Timesheet approval: one stamp for the whole batch, as Harvest's does."""
        with self.lock:
            self._approve(resource, ids, True, self._tick())

    def unapprove(self, resource: str, *ids: int) -> None:
        with self.lock:
            self._approve(resource, ids, False, self._tick())

    def edit(self, resource: str, record_id: int, **fields: Any) -> dict[str, Any]:
        with self.lock:
            self._data[resource][record_id].update(fields, updated_at=self._tick())
            return self.render(resource, record_id)

    def delete(self, resource: str, record_id: int) -> None:
        with self.lock:
            del self._data[resource][record_id]

    def project_by_code(self, code: str) -> dict[str, Any] | None:
        with self.lock:
            found = next((p for p in self._data["projects"].values() if p["code"] == code), None)
            return None if found is None else self.render("projects", found["id"])

    def records(self, resource: str) -> list[dict[str, Any]]:
        with self.lock:
            return [self.render(resource, i) for i in self._data[resource]]

    # -- rendering in Harvest's shape -------------------------------------------------
    def render(self, resource: str, record_id: int) -> dict[str, Any]:
        record = dict(self._data[resource][record_id])
        if resource == "projects":
            client = self._data["clients"][record.pop("client_id")]
            record["client"] = {"id": client["id"], "name": client["name"],
                                "currency": client["currency"]}
        elif resource in NUMBERED:
            user = self._data["users"][record.pop("user_id")]
            project = self._data["projects"][record.pop("project_id")]
            client = self._data["clients"][project["client_id"]]
            record["user"] = {"id": user["id"],
                              "name": f"{user['first_name']} {user['last_name']}".strip()}
            record["client"] = {"id": client["id"], "name": client["name"]}
            # As documented: a time entry names its project by id and name; an
            # expense adds the code, and its client adds the currency.
            record["project"] = {"id": project["id"], "name": project["name"]}
            if resource == "expenses":
                record["project"]["code"] = project["code"]
                record["client"]["currency"] = client["currency"]
            else:
                task = self._data["tasks"][record.pop("task_id")]
                record["task"] = {"id": task["id"], "name": task["name"]}
            record.setdefault("user_assignment", {
                "id": 125_000_000 + user["id"] % 1_000_000, "is_project_manager": False,
                "is_active": True, "budget": None, "created_at": project["created_at"],
                "updated_at": project["created_at"], "hourly_rate": 100.0})
            if resource == "time_entries":
                record.setdefault("task_assignment", {
                    "id": 155_000_000 + record["task"]["id"] % 1_000_000, "billable": True,
                    "is_active": True, "created_at": project["created_at"],
                    "updated_at": project["created_at"], "hourly_rate": 100.0, "budget": None})
        return record

    # -- Harvest's door: auth, limits, error shapes -------------------------------------
    def dispatch(self, request: Request, *, drop: Callable[[], None]) -> Response | None:
        if request.path.startswith(ADMIN_PREFIX):
            return super().dispatch(request, drop=drop)
        now = time.monotonic()
        refused: Response | None = None
        with self.lock:
            auth = request.headers.get("authorization", "")
            if self.access_token is not None and (
                    auth != f"Bearer {self.access_token}"
                    or request.headers.get("harvest-account-id") != self.account_id):
                refused = Response(401, dict(UNAUTHORISED))
            elif not request.headers.get("user-agent", "").strip():
                refused = harvest_error(400, "A User-Agent header naming your application "
                                             "is required")
            else:
                wait = admit(self._window, self.rate_limit, self.window_seconds, now)
                if wait is not None:
                    refused = harvest_error(429, "Too many requests: retry after the "
                                                 "Retry-After seconds")
                    refused.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        response = refused or super().dispatch(request, drop=drop)
        if response is not None:
            response = in_shape(response, harvest_error)
            with self.lock:
                self.requests.append((now, request.method, request.path,
                                      {k: v[0] for k, v in request.query.items()},
                                      response.status))
        return response

    def requests_to(self, prefix: str = "/v2/") -> list[tuple[float, str, str, dict[str, str],
                                                            int]]:
        with self.lock:
            return [r for r in self.requests if r[2].startswith(prefix)]

    def max_in_window(self, window: float | None = None) -> int:
        """The most requests answered without a 429 in any rolling window."""
        window = self.window_seconds if window is None else window
        return max_in_window((r[0] for r in self.requests_to() if r[4] != 429), window)

    # -- reads -------------------------------------------------------------------------
    def _me(self, _request: Request) -> Response:
        with self.lock:
            if self.me is None or self.me not in self._data["users"]:
                return harvest_error(404, "Not found")
            return DecimalResponse(200, self.render("users", self.me))

    def _get(self, request: Request) -> Response:
        resource = request.params["resource"]
        with self.lock:
            try:
                record_id = int(request.params["id"])
            except ValueError:
                record_id = -1
            if resource not in self._data or record_id not in self._data[resource]:
                return harvest_error(404, "Not found")
            return DecimalResponse(200, self.render(resource, record_id))

    def _list(self, request: Request) -> Response:
        resource = request.params["resource"]
        if resource not in self._data:
            return harvest_error(404, "Not found")
        try:
            per_page = int(request.arg("per_page") or PER_PAGE_MAX)
            page = int(request.arg("page") or 1)
        except ValueError:
            return harvest_error(422, "page and per_page must be integers")
        if not 1 <= per_page <= PER_PAGE_MAX or page < 1:
            return harvest_error(422, f"per_page must be between 1 and {PER_PAGE_MAX}")
        with self.lock:
            rows = [self.render(resource, i) for i in self._data[resource]]
        try:
            rows = [r for r in rows if self._matches(resource, r, request)]
        except ValueError as exc:
            return harvest_error(422, str(exc))
        if resource in NUMBERED:
            rows.sort(key=lambda r: (r["spent_date"], r["id"]), reverse=True)
            return self._numbered(request, resource, rows, page, per_page)
        rows.sort(key=lambda r: r["id"], reverse=True)
        return self._cursored(request, resource, rows, page, per_page)

    @staticmethod
    def _matches(resource: str, row: Mapping[str, Any], request: Request) -> bool:
        for name in FILTERS[resource]:
            value = request.arg(name)
            if value is None:
                continue
            if name == "updated_since":
                try:
                    since = _seconds(value)
                except ValueError:
                    raise ValueError(f"updated_since {value!r} is not ISO 8601") from None
                if _seconds(row["updated_at"]) < since:
                    return False
            elif name in ("from", "to"):
                if len(value) != 10:
                    raise ValueError(f"{name} {value!r} is not a date (YYYY-MM-DD)")
                if (row["spent_date"] < value) if name == "from" else (row["spent_date"] > value):
                    return False
            elif name in ("is_active", "is_billed"):
                if str(row[name]).lower() != value.lower():
                    return False
            else:
                ref = row.get(name.removesuffix("_id"))
                actual = ref.get("id") if isinstance(ref, Mapping) else row.get(name)
                if str(actual) != value:
                    return False
        return True

    def _link(self, request: Request, resource: str, **position: Any) -> str:
        kept = {k: v[0] for k, v in request.query.items()
                if k not in ("page", "cursor", "per_page", "ref")}
        return f"{self.url}/v2/{resource}?{urlencode({**kept, **position})}"

    def _envelope(self, resource: str, rows: list[dict[str, Any]], per_page: int, total: int,
                  page: int | None, next_page: int | None, previous_page: int | None,
                  links: dict[str, str | None]) -> Response:
        return DecimalResponse(200, {resource: rows, "per_page": per_page,
                                     "total_pages": max(1, math.ceil(total / per_page)),
                                     "total_entries": total, "next_page": next_page,
                                     "previous_page": previous_page, "page": page,
                                     "links": links})

    def _numbered(self, request: Request, resource: str, rows: list[dict[str, Any]],
                  page: int, per_page: int) -> Response:
        """Offset pages, as Harvest serves time entries and expenses."""
        pages = max(1, math.ceil(len(rows) / per_page))
        chunk = rows[(page - 1) * per_page: page * per_page]
        next_page = page + 1 if page < pages else None
        previous = page - 1 if page > 1 else None

        def link(number: int | None) -> str | None:
            return None if number is None else self._link(request, resource, page=number,
                                                           per_page=per_page)

        return self._envelope(resource, chunk, per_page, len(rows), page, next_page, previous,
                              {"first": link(1), "next": link(next_page),
                               "previous": link(previous), "last": link(pages)})

    def _cursored(self, request: Request, resource: str, rows: list[dict[str, Any]],
                  page: int, per_page: int) -> Response:
        """Keyset pages behind an opaque cursor, ``{"after": {"id": N}}`` as
        Harvest's documented example decodes: the cursor wins over ``page``."""
        cursor = request.arg("cursor")
        pages = max(1, math.ceil(len(rows) / per_page))
        if cursor:
            try:
                after = int(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
                            ["after"]["id"])
            except (ValueError, KeyError, TypeError):
                return harvest_error(422, "cursor is not valid")
            rest = [r for r in rows if r["id"] < after]
            chunk = rest[:per_page]
            last = len(rest) <= per_page
            number = pages if last else None
            next_page, previous = None, (pages - 1 if last and pages > 1 else None)
        else:
            chunk = rows[(page - 1) * per_page: page * per_page]
            last = page >= pages
            number, next_page = page, (None if last else page + 1)
            previous = page - 1 if page > 1 else None
        next_link = None
        if not last and chunk:
            token = base64.urlsafe_b64encode(json.dumps(
                {"after": {"id": chunk[-1]["id"]}}, separators=(",", ":")).encode()).decode()
            next_link = self._link(request, resource, cursor=token.rstrip("="),
                                   per_page=per_page, ref="next_cursor")
        links = {"first": self._link(request, resource, page=1, per_page=per_page, ref="first"),
                 "next": next_link,
                 "previous": None if previous is None else self._link(
                     request, resource, page=previous, per_page=per_page, ref="previous"),
                 "last": self._link(request, resource, page=pages, per_page=per_page,
                                    ref="last")}
        return self._envelope(resource, chunk, per_page, len(rows), number, next_page,
                              previous, links)

    # -- writes ------------------------------------------------------------------------
    def _create_client(self, request: Request) -> Response:
        body = request.json() or {}
        name = str(body.get("name") or "").strip()
        with self.lock:
            if not name:
                return harvest_error(422, "Name can't be blank")
            if any(c["name"] == name for c in self._data["clients"].values()):
                return harvest_error(422, "Name has already been taken")
            stamp = self._tick()
            record = self._put_client({"name": name, "created_at": stamp, "updated_at": stamp,
                                       **{k: body[k] for k in ("currency", "address",
                                                               "is_active") if k in body}})
            return Response(201, dict(record))

    def _project_problem(self, values: Mapping[str, Any], project_id: int | None) -> str | None:
        if values.get("client_id") not in self._data["clients"]:
            return "Client can't be blank"
        if not str(values.get("name") or "").strip():
            return "Name can't be blank"
        if values.get("bill_by") not in BILL_BY:
            return f"Bill by must be one of {', '.join(sorted(BILL_BY))}"
        if values.get("budget_by") not in BUDGET_BY:
            return f"Budget by must be one of {', '.join(sorted(BUDGET_BY))}"
        if not isinstance(values.get("is_billable"), bool):
            return "Is billable must be true or false"
        if any(p["name"] == values["name"] and p["client_id"] == values["client_id"]
               and p["id"] != project_id for p in self._data["projects"].values()):
            return "Name has already been taken"
        return None

    def _create_project(self, request: Request) -> Response:
        body = request.json() or {}
        values = {k: body[k] for k in PROJECT_FIELDS if k in body}
        with self.lock:
            problem = self._project_problem(values, None)
            if problem:
                return harvest_error(422, problem)
            stamp = self._tick()
            record = self._put_project({**values, "created_at": stamp, "updated_at": stamp})
            return Response(201, self.render("projects", record["id"]))

    def _update_project(self, request: Request) -> Response:
        body = request.json() or {}
        with self.lock:
            try:
                record = self._data["projects"][int(request.params["id"])]
            except (KeyError, ValueError):
                return harvest_error(404, "Not found")
            values = {**record, **{k: body[k] for k in PROJECT_FIELDS if k in body}}
            problem = self._project_problem(values, record["id"])
            if problem:
                return harvest_error(422, problem)
            record.update(values, updated_at=self._tick())
            return Response(200, self.render("projects", record["id"]))

    def _admin_seed(self, request: Request) -> Response:
        body = request.json() or {}
        self.seed(**{k: body.get(k) or [] for k in self._data})
        return Response(200, {"seeded": {k: len(v) for k, v in self._data.items()}})
