"""An emulator of the subset of Kantata OX's API v1 that billbridge uses, with
Kantata's paths (``/api/v1/{resource}`` and ``….json``), its normalised
answers, paging (``page``, ``per_page`` ≤ 200, ``meta``), filters
(``updated_after``, ``only``, ``order``, ``include``, ``approved``,
``date_performed_between`` …), error bodies (``{"errors": [{type, message,
field}]}``), 429s past its rate limits (general, and the endpoints Kantata
limits on their own), bulk create-or-replace of custom field values, and the
Subscribed Events every change records, which ``send_events`` forwards to a
hub signed as a relay would. Faults come from the base class.

Assumptions where Kantata's documentation is silent (docs/connectors/kantata.md):
stamps are whole seconds; approving or cancelling a submission changes the
submission's ``updated_at`` but not the entries'; setting a custom field
value changes its subject's ``updated_at`` unless the value is the same.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from billbridge.connectors.kantata.client import BULK_MAX, LIMITED, PER_PAGE_MAX
from billbridge.connectors.kantata.events import submission_of
from billbridge.connectors.kantata.mapping import iso, stamp_seconds
from billbridge.connectors.kantata.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER
from billbridge.connectors.signing import sign
from billbridge.emulation.limits import admit, max_in_window
from billbridge.emulation.server import (
    ADMIN_PREFIX,
    EmulatorServer,
    Request,
    Response,
    in_shape,
)

PREFIX = "/api/v1"
# resource → (Subscribed Event name, subject_type); None: no events recorded.
SUBJECTS: dict[str, tuple[str, str] | None] = {
    "workspaces": ("workspace", "Workspace"), "stories": ("story", "Story"),
    "time_entries": ("time_entry", "TimeEntry"), "expenses": ("expense", "Expense"),
    "timesheet_submissions": ("timesheet_submission", "Submission"),
    "expense_report_submissions": ("expense_report_submission", "Submission"),
    "users": None, "custom_fields": None, "custom_field_values": None,
}
# include name → (top-level key, the record's foreign key or id-list key)
INCLUDES: dict[str, dict[str, tuple[str, str]]] = {
    "workspaces": {"custom_field_values": ("custom_field_values", "custom_field_value_ids")},
    "stories": {"custom_field_values": ("custom_field_values", "custom_field_value_ids"),
                "workspace": ("workspaces", "workspace_id")},
    "time_entries": {"active_submission": ("timesheet_submissions", "active_submission_id"),
                     "workspace": ("workspaces", "workspace_id"),
                     "user": ("users", "user_id"), "story": ("stories", "story_id")},
    "expenses": {"recent_submission": ("expense_report_submissions", "recent_submission_id"),
                 "workspace": ("workspaces", "workspace_id"), "user": ("users", "user_id")},
    "timesheet_submissions": {"time_entries": ("time_entries", "time_entry_ids")},
    "expense_report_submissions": {"expenses": ("expenses", "expense_ids")},
    "users": {}, "custom_fields": {}, "custom_field_values": {},
}
SORTABLE = frozenset({"updated_at", "created_at", "date_performed", "date", "position"})
DEFAULTS: dict[str, dict[str, Any]] = {
    "workspaces": {"title": "", "archived": False, "description": "", "budgeted": True,
                   "currency": "USD", "currency_symbol": "$", "currency_base_unit": 100,
                   "price_in_cents": 0, "require_time_approvals": True,
                   "require_expense_approvals": True, "access_level": "open",
                   "percentage_complete": 0, "start_date": None, "due_date": None,
                   "status": {"color": "green", "key": 310, "message": "In Progress"}},
    "stories": {"title": "", "description": "", "story_type": "task", "state": "not started",
                "billable": True, "position": 0, "archived": False, "deleted_at": None,
                "parent_id": None, "due_date": None, "start_date": None,
                "budget_estimate_in_cents": None, "fixed_fee": False, "percentage_complete": 0},
    "time_entries": {"story_id": None, "billable": True, "notes": "", "rate_in_cents": 0,
                     "cost_rate_in_cents": 0, "currency": "USD", "currency_symbol": "$",
                     "currency_base_unit": 100, "user_can_edit": True, "approved": False,
                     "role_id": None, "taxable": False, "is_invoiced": False,
                     "active_submission_id": None, "location": None},
    "expenses": {"notes": "", "category": "Other", "currency": "USD", "currency_symbol": "$",
                 "currency_base_unit": 100, "user_can_edit": True, "is_invoiced": False,
                 "is_billable": True, "taxable": False, "reimbursable": True, "story_id": None,
                 "receipt_id": None, "expense_category_id": None,
                 "recent_submission_id": None},
    "users": {"full_name": "", "email_address": "", "headline": "", "disabled": False},
    "custom_fields": {"value_type": "string", "subject_type": "Workspace"},
}
FILTERS: dict[str, Callable[[dict[str, Any], str], bool]] = {
    "workspace_id": lambda r, v: str(r.get("workspace_id")) in v.split(","),
    "date_performed_between": lambda r, v: _between(r.get("date_performed"), v),
    "date_expensed_between": lambda r, v: _between(r.get("date"), v),
    "approved": lambda r, v: bool(r.get("approved")),  # documented: the value is ignored
    "subject_type": lambda r, v: r.get("subject_type") == v,
    "custom_field_id": lambda r, v: str(r.get("custom_field_id")) == v,
}


def _between(day: Any, span: str) -> bool:
    start, _, end = span.partition(":")
    return bool(day) and (not start or str(day) >= start) and (not end or str(day) <= end)


def errors(status: int, message: str, kind: str = "system", field: str | None = None,
           headers: Mapping[str, str] | None = None) -> Response:
    item = {"type": kind, "message": message, **({"field": field} if field else {})}
    return Response(status, {"errors": [item]}, dict(headers or {}))


class KantataEmulator(EmulatorServer):
    def __init__(self, *, token: str | None = "kantata-token", port: int = 0,
                 rate_limit: int = 100, limited_rate_limit: int = 30,
                 window_seconds: float = 60.0, retry_after: int | None = None) -> None:
        super().__init__(port=port, token=None)  # Kantata-shaped auth, below
        self.access_token = token
        self.rate_limit, self.limited_rate_limit = rate_limit, limited_rate_limit
        self.window_seconds = window_seconds
        self.retry_after = retry_after  # Kantata documents none; set to send one
        self.ignore_page = False  # a broken server for pagination-termination tests
        self.requests: list[tuple[float, str, str, int]] = []
        self._windows = {False: collections.deque[float](), True: collections.deque[float]()}
        self._records: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in SUBJECTS}
        self._events: list[dict[str, Any]] = []
        self._ids = itertools.count(1001)
        self._clock = 0
        for resource in SUBJECTS:
            self.route("GET", f"{PREFIX}/{resource}", self._list)
            self.route("GET", f"{PREFIX}/{resource}.json", self._list)
        self.route("POST", f"{PREFIX}/custom_field_values", self._create_values)
        self.route("POST", f"{PREFIX}/custom_field_values.json", self._create_values)

    # -- state -------------------------------------------------------------------------
    def _stamp(self, previous: Any = None, pinned: Any = None) -> str:
        """Whole seconds, never backwards; a record's own stamps strictly increase."""
        if pinned is not None:
            stamp = stamp_seconds(pinned) if not isinstance(pinned, int) else pinned
            if stamp is None:
                raise ValueError(f"not a timestamp: {pinned!r}")
        else:
            stamp = max(int(time.time()), self._clock, (stamp_seconds(previous) or 0) + 1)
        self._clock = max(self._clock, stamp)
        return iso(stamp)

    def _record_event(self, resource: str, action: str, record: Mapping[str, Any] | None,
                      previous: Mapping[str, Any] | None) -> None:
        subject = SUBJECTS[resource]
        if subject is None:
            return
        now = iso(max(self._clock, int(time.time())))
        current = record or previous or {}
        changes = sorted(k for k in set(record or {}) | set(previous or {})
                         if (record or {}).get(k) != (previous or {}).get(k))
        self._events.append({
            "id": str(len(self._events) + 1), "account_id": 1, "created_at": now,
            "event_type": f"{subject[0]}:{action}", "subject_type": subject[1],
            "subject_id": int(current["id"]), "subject_changed_at": current.get("updated_at"),
            "subject_ref": {"key": resource, "id": str(current["id"])}, "user_id": 1,
            "current_payload": json.dumps(record) if record else None,
            "previous_payload": json.dumps(previous) if previous else None,
            "payload_changes": json.dumps(changes)})

    def add(self, resource: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Create a record as a Kantata user would; ``updated_at`` may be pinned."""
        with self.lock:
            fields = {**DEFAULTS.get(resource, {}), **record}
            if resource == "time_entries" and "approved" not in record:
                # "approved": on an approved timesheet, or in a project without approvals.
                space = self._records["workspaces"].get(str(fields.get("workspace_id")), {})
                fields["approved"] = space.get("require_time_approvals") is False
            record_id = str(fields.pop("id", None) or next(self._ids))
            stamp = self._stamp(pinned=fields.pop("updated_at", None))
            stored = {"id": record_id, "created_at": fields.pop("created_at", stamp),
                      "updated_at": stamp, **fields}
            self._records[resource][record_id] = stored
            self._record_event(resource, "created", stored, None)
            return dict(stored)

    def update(self, resource: str, record_id: Any, **fields: Any) -> dict[str, Any]:
        with self.lock:
            previous = self._records[resource][str(record_id)]
            pinned = fields.pop("updated_at", None)
            stored = {**previous, **fields,
                      "updated_at": self._stamp(previous["updated_at"], pinned)}
            self._records[resource][str(record_id)] = stored
            self._record_event(resource, "updated", stored, previous)
            return dict(stored)

    def delete(self, resource: str, record_id: Any) -> None:
        with self.lock:
            previous = self._records[resource].pop(str(record_id))
            self._record_event(resource, "deleted", None, previous)

    def get(self, resource: str, record_id: Any) -> dict[str, Any]:
        with self.lock:
            return dict(self._records[resource][str(record_id)])

    def seed(self, **resources: Iterable[Mapping[str, Any]]) -> None:
        for resource, records in resources.items():
            for record in records:
                self.add(resource, record)

    def set_custom_value(self, subject_type: str, subject_id: Any, field_id: Any,
                         value: Any) -> None:
        with self.lock:
            self._set_value({"subject_type": subject_type, "subject_id": int(subject_id),
                             "custom_field_id": int(field_id), "value": value})

    def custom_value(self, subject_type: str, subject_id: Any, field_id: Any) -> Any:
        with self.lock:
            found = self._value_of(subject_type, subject_id, field_id)
            return None if found is None else found["value"]

    def _value_of(self, subject_type: str, subject_id: Any,
                  field_id: Any) -> dict[str, Any] | None:
        return next((v for v in self._records["custom_field_values"].values()
                     if (v["subject_type"], v["subject_id"], v["custom_field_id"])
                     == (subject_type, int(subject_id), str(field_id))), None)

    # -- approvals ----------------------------------------------------------------------
    def submit(self, resource: str, ids: Iterable[Any]) -> str:
        """A timesheet (time entries) or expense report (expenses), pending."""
        submissions, ids_key, pointer = submission_of(resource)
        ids = [str(i) for i in ids]
        first = self.get(resource, ids[0])
        dates = sorted(str(self.get(resource, i).get("date_performed") or
                           self.get(resource, i).get("date")) for i in ids)
        submission = self.add(submissions, {
            "status": "pending", "title": f"Week of {dates[0]}", "comment": "",
            "type": submissions[:-1], "workspace_id": first["workspace_id"],
            "user_id": first["user_id"], ids_key: ids, "currency": "USD",
            "currency_symbol": "$", "currency_base_unit": 100, "start_date": dates[0],
            "end_date": dates[-1], "line_item_total_in_cents": 0,
            "line_item_total_formatted": "$0.00", "external_reference_ids": [],
            "resolution_description": "", "current_resolution_description": "",
            "current_resolution_created_at_date": None, "current_resolution_creator_id": None,
            "permissions": {"can_cancel_submission": True, "can_approve_submission": True,
                            "can_reject_submission": True, "can_resubmit_submission": False}})
        for record_id in ids:
            self._link(resource, record_id, pointer, submission["id"])
        return str(submission["id"])

    def resolve(self, resource: str, submission_id: Any, status: str) -> dict[str, Any]:
        """Approve, reject or cancel a submission. The entries' ``approved``
        follows; their own ``updated_at`` does not (see the module note)."""
        if status not in ("approved", "rejected", "canceled"):
            raise ValueError(f"unknown resolution {status!r}")
        submissions, ids_key, pointer = submission_of(resource)
        submission = self.update(submissions, submission_id, status=status,
                                 current_resolution_creator_id=1)
        self._link(submissions, submission["id"], "current_resolution_created_at_date",
                   submission["updated_at"])
        for record_id in submission[ids_key]:
            if resource == "time_entries":
                self._link(resource, record_id, "approved", status == "approved")
            if status == "canceled" and pointer == "active_submission_id":
                self._link(resource, record_id, pointer, None)
        return submission

    def _link(self, resource: str, record_id: str, name: str, value: Any) -> None:
        with self.lock:
            self._records[resource][record_id][name] = value

    # -- Subscribed Events and the relay ----------------------------------------------------
    def subscribed_events(self, after: int = 0) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self._events[after:]]

    @property
    def event_count(self) -> int:
        with self.lock:
            return len(self._events)

    def send_events(self, url: str, events: list[dict[str, Any]], *, secret: str,
                    timestamp: int | None = None, signature: str | None = None
                    ) -> httpx.Response:
        """POST Subscribed Events as Kantata's normalised answer, signed as the
        relay signs (``connectors.signing``)."""
        body = json.dumps({"count": len(events), "results": [
            {"key": "subscribed_events", "id": e["id"]} for e in events],
            "subscribed_events": {e["id"]: e for e in events},
            "meta": {"count": len(events), "page_count": 1, "page_number": 1,
                     "page_size": len(events)}}).encode()
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        with httpx.Client(timeout=10) as client:
            return client.post(url, content=body, headers={
                "Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: sign(secret, stamp, body) if signature is None else signature})

    # -- Kantata's door: auth, limits, error shapes ----------------------------------------
    def dispatch(self, request: Request, *, drop: Callable[[], None]) -> Response | None:
        if request.path.startswith(ADMIN_PREFIX):
            return super().dispatch(request, drop=drop)
        now = time.monotonic()
        resource = request.path.removeprefix(f"{PREFIX}/").removesuffix(".json")
        limited = (request.method, resource) in LIMITED
        refused: Response | None = None
        with self.lock:
            if self.access_token is not None and request.headers.get(
                    "authorization") != f"Bearer {self.access_token}":
                refused = errors(401, "Invalid OAuth 2 Request", "oauth")
            else:
                wait = admit(self._windows[False], self.rate_limit, self.window_seconds, now)
                if wait is None and limited:
                    wait = admit(self._windows[True], self.limited_rate_limit,
                                 self.window_seconds, now)
                if wait is not None:
                    retry = {} if self.retry_after is None else {
                        "Retry-After": str(self.retry_after)}
                    refused = errors(429, "Too many requests; retry in about "
                                     f"{max(1, math.ceil(wait))} s", headers=retry)
        response = refused or super().dispatch(request, drop=drop)
        if response is not None:
            response = in_shape(response, lambda status, message: errors(
                status, "Too many requests; retry after a small delay" if status == 429
                else message))
            with self.lock:
                self.requests.append((now, request.method, request.path, response.status))
        return response

    def max_in_window(self, window: float, prefix: str = PREFIX) -> int:
        """The most requests (answered or not) in any rolling window."""
        return max_in_window((r[0] for r in self.requests if r[2].startswith(prefix)), window)

    # -- GET lists ------------------------------------------------------------------------
    def _list(self, request: Request) -> Response:
        resource = request.path.removeprefix(f"{PREFIX}/").removesuffix(".json")
        try:
            page = int(request.arg("page", "1") or 1)
            per_page = int(request.arg("per_page", "20") or 20)
        except ValueError:
            return errors(400, "page and per_page must be integers", "validation")
        if page < 1 or not 1 <= per_page <= PER_PAGE_MAX:
            return errors(400, f"per_page must be between 1 and {PER_PAGE_MAX}", "validation",
                          "per_page")
        includes = [i for i in (request.arg("include") or "").split(",") if i]
        unknown = [i for i in includes if i not in INCLUDES[resource]]
        if unknown:
            return errors(400, f"{', '.join(unknown)} is not a valid include for {resource}",
                          "validation", "include")
        with self.lock:
            rows = self._select(resource, request)
            if rows is None:
                return errors(400, "order must be a valid sort field and direction",
                              "validation", "order")
            start = 0 if self.ignore_page else (page - 1) * per_page
            chunk = [dict(r) for r in rows[start:start + per_page]]
            body: dict[str, Any] = {
                "count": len(rows), "results": [{"key": resource, "id": r["id"]} for r in chunk],
                resource: {r["id"]: r for r in chunk},
                "meta": {"count": len(rows), "page_count": math.ceil(len(rows) / per_page),
                         "page_number": page, "page_size": per_page}}
            for name in includes:
                self._include(resource, name, chunk, body)
        return Response(200, body)

    def _select(self, resource: str, request: Request) -> list[dict[str, Any]] | None:
        rows = list(self._records[resource].values())
        only = request.arg("only")
        if only:
            rows = [r for r in rows if r["id"] in only.split(",")]
        after = stamp_seconds(request.arg("updated_after"))
        if after is not None:
            rows = [r for r in rows if (stamp_seconds(r["updated_at"]) or 0) > after]
        for name, test in FILTERS.items():
            value = request.arg(name)
            if value is not None:
                rows = [r for r in rows if test(r, value)]
        rows = self._visible(resource, rows, request)
        order = request.arg("order") or ("date_performed:desc" if resource == "time_entries"
                                          else "created_at:desc")
        name, _, direction = order.partition(":")
        if name not in SORTABLE or direction not in ("asc", "desc"):
            return None
        rows.sort(key=lambda r: int(r["id"]))
        rows.sort(key=lambda r: str(r.get(name) or ""), reverse=direction == "desc")
        return rows

    def _visible(self, resource: str, rows: list[dict[str, Any]],
                 request: Request) -> list[dict[str, Any]]:
        """Archived projects (and their time and expenses) are hidden unless asked for."""
        if resource == "workspaces":
            archived = request.arg("archived") or (
                "include" if request.arg("include_archived") == "true" else "exclude")
            keep = {"include": (True, False), "only": (True,), "exclude": (False,)}[archived]
            rows = [r for r in rows if bool(r.get("archived")) in keep]
            search = request.arg("search")
            return [r for r in rows if self._matches(r, search)] if search else rows
        if resource in ("time_entries", "expenses") and \
                request.arg("from_archived_workspaces") != "true":
            spaces = self._records["workspaces"]
            return [r for r in rows
                    if not spaces.get(str(r.get("workspace_id")), {}).get("archived")]
        if resource == "stories":
            return [r for r in rows if not r.get("archived") and not r.get("deleted_at")]
        return rows

    def _matches(self, workspace: Mapping[str, Any], search: str) -> bool:
        """``search=custom_field_value:'x'`` (display values) or a keyword in the title."""
        field, quoted, rest = search.partition(":'")
        if quoted and field == "custom_field_value":
            keyword = rest.rstrip("'").lower()
            return any(keyword in str(v["display_value"]).lower()
                       for v in self._records["custom_field_values"].values()
                       if v["subject_type"] == "Workspace"
                       and str(v["subject_id"]) == workspace["id"])
        return search.lower() in str(workspace.get("title") or "").lower()

    def _include(self, resource: str, name: str, chunk: list[dict[str, Any]],
                 body: dict[str, Any]) -> None:
        key, pointer = INCLUDES[resource][name]
        found = body.setdefault(key, {})
        for record in chunk:
            if name == "custom_field_values":
                subject = _subject_type(resource)
                values = [v for v in self._records["custom_field_values"].values()
                          if (v["subject_type"], str(v["subject_id"])) == (subject, record["id"])]
                record[pointer] = [v["id"] for v in values]
                found.update((v["id"], dict(v)) for v in values)
                continue
            targets = record.get(pointer)
            for target in targets if isinstance(targets, list) else [targets]:
                if target is not None and str(target) in self._records[key]:
                    found[str(target)] = dict(self._records[key][str(target)])

    # -- custom field values -----------------------------------------------------------------
    def _create_values(self, request: Request) -> Response:
        body = request.json() or {}
        items = body.get("custom_field_values", [body.get("custom_field_value")])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return errors(400, "expected custom_field_value or custom_field_values",
                          "validation")
        if len(items) > BULK_MAX:
            return errors(422, f"at most {BULK_MAX} objects may be created at once",
                          "validation")
        with self.lock:
            for item in items:
                problem = self._invalid_value(item)
                if problem:
                    return errors(422, problem[1], "validation", problem[0])
            stored = [self._set_value(item) for item in items]
        return Response(200, {"count": len(stored), "results": [
            {"key": "custom_field_values", "id": v["id"]} for v in stored],
            "custom_field_values": {v["id"]: v for v in stored},
            "meta": {"count": len(stored), "page_count": 1, "page_number": 1,
                     "page_size": len(stored)}})

    def _invalid_value(self, item: Mapping[str, Any]) -> tuple[str, str] | None:
        field = self._records["custom_fields"].get(str(item.get("custom_field_id")))
        if field is None:
            return "custom_field_id", f"custom field {item.get('custom_field_id')} does not exist"
        subject_type = item.get("subject_type")
        resource = _resource_of(subject_type)
        if resource is None or field["subject_type"] != subject_type:
            return "subject_type", (f"custom field {field['id']} belongs to "
                                    f"{field['subject_type']}, not {subject_type}")
        if str(item.get("subject_id")) not in self._records[resource]:
            return "subject_id", f"{subject_type} {item.get('subject_id')} does not exist"
        if item.get("value") in (None, ""):
            return "value", "value can't be blank"
        return None

    def _set_value(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Create, or replace the subject's value for the field (a new id, as
        Kantata documents); the same value again changes nothing."""
        field_id, subject = str(item["custom_field_id"]), int(item["subject_id"])
        existing = self._value_of(str(item["subject_type"]), subject, field_id)
        if existing is not None and existing["value"] == item["value"]:
            return dict(existing)
        if existing is not None:
            del self._records["custom_field_values"][existing["id"]]
        stamp = self._stamp()
        value = {"id": str(next(self._ids)), "subject_type": item["subject_type"],
                 "subject_id": subject, "custom_field_id": field_id,
                 "custom_field_name": self._records["custom_fields"][field_id]["name"],
                 "value": item["value"], "display_value": str(item["value"]),
                 "type": "string", "can_edit": True, "setter_id": "1", "account_id": 1,
                 "created_at": stamp, "updated_at": stamp}
        self._records["custom_field_values"][value["id"]] = value
        self.update(str(_resource_of(item["subject_type"])), subject)  # the project changed
        return dict(value)


def _subject_type(resource: str) -> str:
    subject = SUBJECTS[resource]
    return subject[1] if subject else ""


def _resource_of(subject_type: Any) -> str | None:
    """The resource of a custom field's subject (Workspace, Story)."""
    return {"Workspace": "workspaces", "Story": "stories"}.get(str(subject_type))
