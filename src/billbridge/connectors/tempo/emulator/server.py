"""An emulator of the subset of Tempo's REST API v4 billbridge and the
``tempo-api-python-client`` use, with the Jira issues its worklogs name.

Served under ``/4``: ``worklogs`` (GET with ``from``/``to``/``updatedFrom``;
``/{id}``, ``/jira/{jiraWorklogId}``, ``/user/{accountId}``; POST, PUT,
DELETE), ``worklogs/search`` (POST), ``timesheet-approvals/user/{accountId}``
(GET, and ``/submit|approve|reject|reopen``), ``timesheet-approvals/waiting``,
``accounts``, ``periods``; and Jira's ``/rest/api/3/issue/{id}`` (basic
auth, e-mail and API token, outside Tempo's limit). Lists answer
``{"self", "metadata": {"count", "offset", "limit", "next"?}, "results"}``,
``limit`` 50 by default and at most 5,000 (400 beyond). Errors are
``{"errors": {"message"}}``; 401 and 403 are text/html. Past 5 requests in
any second it answers 429 (no Retry-After unless ``retry_after`` is set:
Tempo's headers are unverified). ``send_webhook`` posts Jira's worklog
webhooks to a hub, signed ``X-Hub-Signature: sha256=…`` as an admin webhook
with a secret is. Faults come from the base class.

Assumptions where the facts are silent (docs/connectors/tempo.md): periods are
calendar months; ``updatedAt`` is to the second and ``updatedFrom`` includes
it; ``orderBy=UPDATED`` orders by it (else by id); approving a timesheet
changes the approval's ``status.updatedAt``, not its worklogs.
"""

from __future__ import annotations

import base64
import calendar
import collections
import itertools
import json
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from billbridge.connectors.tempo.client import LIMIT_MAX, REQUESTS_PER_SECOND
from billbridge.connectors.tempo.mapping import ACCOUNT_ATTRIBUTE
from billbridge.connectors.tempo.webhooks import SIGNATURE_HEADER, sign
from billbridge.emulation.limits import admit, max_in_window
from billbridge.emulation.server import (
    ADMIN_PREFIX,
    EmulatorServer,
    Request,
    Response,
    in_shape,
)

PREFIX = "/4"
DEFAULT_LIMIT = 50  # Tempo's help centre
ACTIONS = {"submit": "WAITING_FOR_APPROVAL", "approve": "APPROVED", "reject": "REJECTED",
           "reopen": "OPEN"}
ORDERS: dict[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]] = {
    "ID": lambda w: (w["tempoWorklogId"],),
    "UPDATED": lambda w: (w["updatedAt"], w["tempoWorklogId"]),
    "START_DATE_TIME": lambda w: (w["startDate"], w["startTime"], w["tempoWorklogId"]),
}


def tempo_error(status: int, message: str) -> Response:
    if status in (401, 403):
        return Response(status, f"<html><body><h1>{status}</h1><p>{message}</p></body></html>"
                        .encode(), {"Content-Type": "text/html"})
    return Response(status, {"errors": {"message": message}})


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(value: str) -> int:
    """A date (its midnight, UTC) or a date-time, as Unix seconds."""
    if len(value) == 10:
        value += "T00:00:00Z"
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp())


def period_of(day: str) -> tuple[str, str]:
    """The timesheet period holding ``day``: its calendar month."""
    when = date.fromisoformat(day)
    last = calendar.monthrange(when.year, when.month)[1]
    return when.replace(day=1).isoformat(), when.replace(day=last).isoformat()


class TempoEmulator(EmulatorServer):
    def __init__(self, *, port: int = 0, token: str | None = "tempo-token",
                 rate_limit: int = REQUESTS_PER_SECOND, window_seconds: float = 1.0,
                 retry_after: int | None = None, jira_email: str = "jira@example.com",
                 jira_token: str | None = "jira-token") -> None:
        super().__init__(port=port, token=None)  # auth is Tempo- and Jira-shaped, below
        self.access_token = token
        self.jira_basic = None if jira_token is None else "Basic " + base64.b64encode(
            f"{jira_email}:{jira_token}".encode()).decode()
        self.rate_limit, self.window_seconds, self.retry_after = (rate_limit, window_seconds,
                                                                  retry_after)
        self.ignore_offset = False  # a broken server: every offset answers the first page
        self.requests: list[tuple[float, str, str, int]] = []
        self._window: collections.deque[float] = collections.deque()
        self.users: dict[str, str] = {}  # accountId → display name
        self.accounts: dict[str, dict[str, Any]] = {}
        self.issues: dict[int, dict[str, Any]] = {}
        self.worklogs: dict[int, dict[str, Any]] = {}
        self.approvals: dict[tuple[str, str], dict[str, Any]] = {}
        self._ids, self._jira_ids = itertools.count(1001), itertools.count(20001)
        self._clock = int(time.time())
        self.routes([
            ("GET /4/worklogs", self._list), ("POST /4/worklogs/search", self._search),
            ("GET /4/worklogs/jira/{jira}", self._by_jira),
            ("GET /4/worklogs/user/{author}", self._list),
            ("GET /4/worklogs/{id}", self._get), ("POST /4/worklogs", self._create),
            ("PUT /4/worklogs/{id}", self._update), ("DELETE /4/worklogs/{id}", self._delete),
            ("GET /4/timesheet-approvals/waiting", self._waiting),
            ("GET /4/timesheet-approvals/user/{author}", self._approval),
            ("POST /4/timesheet-approvals/user/{author}/{action}", self._act),
            ("GET /4/accounts", self._accounts), ("GET /4/periods", self._periods),
            ("GET /rest/api/3/issue/{id}", self._issue),
            ("POST /_emulator/seed", self._admin_seed),
        ])

    # -- the firm's Tempo and Jira ---------------------------------------------------------
    def _tick(self) -> str:
        """A change's stamp: to the second, strictly after the last one."""
        self._clock = max(self._clock + 1, int(time.time()))
        return _iso(self._clock)

    def seed(self, *, users: Mapping[str, str] | None = None,
             accounts: Mapping[str, str] | None = None,
             issues: Mapping[int, str] | None = None) -> None:
        """People (accountId → name), Tempo accounts (key → name) and Jira
        issues (id → key, e.g. ``{10001: "GLX-1"}``)."""
        with self.lock:
            self.users.update(users or {})
            for key, name in (accounts or {}).items():
                self.accounts[key] = {"id": len(self.accounts) + 1, "key": key, "name": name,
                                      "status": "OPEN", "global": False}
            for issue_id, key in (issues or {}).items():
                self.issues[int(issue_id)] = {"id": str(issue_id), "key": key,
                                              "fields": {"summary": key, "project": {
                                                  "key": key.partition("-")[0]}}}

    def log(self, *, author: str, issue: int, day: str, seconds: int,
            account: str | None = None, billable: int | None = None, description: str = "",
            updated_at: str | None = None, worklog_id: int | None = None,
            jira_id: int | None = None, start_time: str = "09:00:00") -> dict[str, Any]:
        """A consultant logs time on a Jira issue against a Tempo account."""
        with self.lock:
            stamp = updated_at or self._tick()
            tempo_id = worklog_id or next(self._ids)
            self.worklogs[tempo_id] = {
                "tempoWorklogId": tempo_id, "jiraWorklogId": jira_id or next(self._jira_ids),
                "issueId": issue, "author": author, "timeSpentSeconds": seconds,
                "billableSeconds": seconds if billable is None else billable,
                "startDate": day, "startTime": start_time, "description": description,
                "account": account, "createdAt": stamp, "updatedAt": stamp}
            return self.render(tempo_id)

    def edit(self, tempo_id: int, **fields: Any) -> dict[str, Any]:
        with self.lock:
            self.worklogs[tempo_id].update(fields, updatedAt=fields.get("updatedAt")
                                           or self._tick())
            return self.render(tempo_id)

    def delete(self, tempo_id: int) -> None:
        with self.lock:
            del self.worklogs[tempo_id]

    def act(self, author: str, day: str, action: str) -> dict[str, Any]:
        """A timesheet moves: submit, approve, reject or reopen its period."""
        with self.lock:
            start, _end = period_of(day)
            self.approvals[(author, start)] = {"key": ACTIONS[action],
                                               "updatedAt": self._tick(), "comment": ""}
            return self.render_approval(author, day)

    def _admin_seed(self, request: Request) -> Response:
        """``{"users", "accounts", "issues", "worklogs": [log()'s arguments],
        "timesheets": [{"author", "day", "action"}]}``, for a standalone run."""
        try:
            body = request.json() or {}
            self.seed(users=body.get("users"), accounts=body.get("accounts"),
                      issues={int(k): v for k, v in (body.get("issues") or {}).items()})
            made = [self.log(**w) for w in body.get("worklogs") or []]
            for sheet in body.get("timesheets") or []:
                self.act(sheet["author"], sheet["day"], sheet["action"])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return tempo_error(400, f"seed: {exc!r}")
        return Response(200, {"worklogs": [w["tempoWorklogId"] for w in made]})

    # -- rendering in Tempo's shape -------------------------------------------------------
    def render(self, tempo_id: int) -> dict[str, Any]:
        w = self.worklogs[tempo_id]
        base = self.url if self._httpd else "https://api.tempo.io"
        values = [{"key": ACCOUNT_ATTRIBUTE, "value": w["account"]}] if w["account"] else []
        return {"self": f"{base}/4/worklogs/{tempo_id}", "tempoWorklogId": tempo_id,
                "jiraWorklogId": w["jiraWorklogId"],
                "issue": {"self": f"{base}/rest/api/3/issue/{w['issueId']}", "id": w["issueId"]},
                "timeSpentSeconds": w["timeSpentSeconds"],
                "billableSeconds": w["billableSeconds"], "startDate": w["startDate"],
                "startTime": w["startTime"], "description": w["description"],
                "createdAt": w["createdAt"], "updatedAt": w["updatedAt"],
                "author": {"self": f"{base}/rest/api/3/user?accountId={w['author']}",
                           "accountId": w["author"]},
                "attributes": {"self": f"{base}/4/worklogs/{tempo_id}/work-attribute-values",
                               "values": values}}

    def render_approval(self, author: str, day: str) -> dict[str, Any]:
        start, end = period_of(day)
        state = self.approvals.get((author, start)) or {"key": "OPEN", "updatedAt": None,
                                                        "comment": ""}
        mine = [w for w in self.worklogs.values()
                if w["author"] == author and start <= w["startDate"] <= end]
        spent = sum(w["timeSpentSeconds"] for w in mine)
        return {"self": f"{self.url}/4/timesheet-approvals/user/{author}?from={start}&to={end}",
                "user": {"accountId": author, "displayName": self.users.get(author, author)},
                "period": {"from": start, "to": end}, "timeSpentSeconds": spent,
                "requiredSeconds": 0, "status": {**state, "actor": None},
                "worklogs": {"self": f"{self.url}/4/worklogs/user/{author}?from={start}&to={end}"},
                "actions": {}}

    # -- Tempo's door: auth, the gateway's limit, error shapes --------------------------------
    def dispatch(self, request: Request, *, drop: Callable[[], None]) -> Response | None:
        if request.path.startswith(ADMIN_PREFIX):
            return super().dispatch(request, drop=drop)
        now = time.monotonic()
        refused: Response | None = None
        auth = request.headers.get("authorization")
        with self.lock:
            if request.path.startswith("/rest/"):  # Jira: its own auth, not Tempo's gateway
                if self.jira_basic is not None and auth != self.jira_basic:
                    refused = Response(401, {"errorMessages": [
                        "You are not authenticated. Authentication required to perform this "
                        "operation."], "errors": {}})
            elif self.access_token is not None and auth != f"Bearer {self.access_token}":
                refused = tempo_error(401, "Unauthorized")
            elif admit(self._window, self.rate_limit, self.window_seconds, now) is not None:
                refused = tempo_error(429, "Too many requests: retry after at least 1 second")
                if self.retry_after is not None:
                    refused.headers["Retry-After"] = str(self.retry_after)
        response = refused or super().dispatch(request, drop=drop)
        if response is not None:
            response = in_shape(response, tempo_error)
            with self.lock:
                self.requests.append((now, request.method, request.path, response.status))
        return response

    def max_in_window(self, window: float = 1.0) -> int:
        """The most requests answered without a 429 in any rolling window."""
        return max_in_window((r[0] for r in self.requests if r[3] != 429), window)

    # -- reads ----------------------------------------------------------------------------------
    def _page(self, request: Request, rows: list[dict[str, Any]], args: Mapping[str, str],
              ) -> Response:
        try:
            offset = int(args.get("offset") or 0)
            limit = int(args.get("limit") or DEFAULT_LIMIT)
        except ValueError:
            return tempo_error(400, "offset and limit must be integers")
        if offset < 0 or not 1 <= limit <= LIMIT_MAX:
            return tempo_error(400, f"limit must be between 1 and {LIMIT_MAX}")
        order = ORDERS.get(str(args.get("orderBy") or "ID").upper())
        if order is None:
            return tempo_error(400, f"orderBy must be one of {', '.join(ORDERS)}")
        rows.sort(key=order)
        start = 0 if self.ignore_offset else offset
        chunk = rows[start:start + limit]
        metadata: dict[str, Any] = {"count": len(chunk), "offset": offset, "limit": limit}
        query = {k: v for k, v in args.items() if k not in ("offset", "limit")}

        def link(at: int) -> str:
            return f"{self.url}{request.path}?{urlencode({**query, 'offset': at, 'limit': limit})}"

        if offset + limit < len(rows):
            metadata["next"] = link(offset + limit)
        if offset:
            metadata["previous"] = link(max(0, offset - limit))
        return Response(200, {"self": f"{self.url}{request.path}", "metadata": metadata,
                              "results": chunk})

    def _select(self, args: Mapping[str, Any]) -> list[dict[str, Any]] | str:
        rows = [self.render(i) for i in self.worklogs]
        try:
            since = _seconds(str(args["updatedFrom"])) if args.get("updatedFrom") else None
        except ValueError:
            return f"updatedFrom {args.get('updatedFrom')!r} is not a date or date-time"
        if args.get("from"):
            rows = [w for w in rows if w["startDate"] >= str(args["from"])]
        if args.get("to"):
            rows = [w for w in rows if w["startDate"] <= str(args["to"])]
        if since is not None:
            rows = [w for w in rows if _seconds(w["updatedAt"]) >= since]
        for name, (ref, key) in (("authorIds", ("author", "accountId")),
                                 ("issueIds", ("issue", "id"))):
            if args.get(name):
                wanted = {str(v) for v in args[name]}
                rows = [w for w in rows if str(w[ref][key]) in wanted]
        return rows

    def _list(self, request: Request) -> Response:
        args = {k: v[0] for k, v in request.query.items()}
        with self.lock:
            rows = self._select(args)
            if isinstance(rows, str):
                return tempo_error(400, rows)
            author = request.params.get("author")
            if author is not None:
                rows = [w for w in rows if w["author"]["accountId"] == author]
            return self._page(request, rows, args)

    def _search(self, request: Request) -> Response:
        try:
            body = request.json() or {}
        except ValueError:
            return tempo_error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return tempo_error(400, "the body must be a JSON object")
        with self.lock:
            rows = self._select(body)
            if isinstance(rows, str):
                return tempo_error(400, rows)
            return self._page(request, rows, {k: v[0] for k, v in request.query.items()})

    def _get(self, request: Request) -> Response:
        with self.lock:
            found = next((i for i in self.worklogs if str(i) == request.params["id"]), None)
            if found is None:
                return tempo_error(404, f"Worklog {request.params['id']} does not exist")
            return Response(200, self.render(found))

    def _by_jira(self, request: Request) -> Response:
        with self.lock:
            found = next((i for i, w in self.worklogs.items()
                          if str(w["jiraWorklogId"]) == request.params["jira"]), None)
            if found is None:
                return tempo_error(404, f"No worklog for Jira worklog {request.params['jira']}")
            return Response(200, self.render(found))

    def _approval(self, request: Request) -> Response:
        day = request.arg("from")
        if not day:
            return tempo_error(400, "from and to are required")
        with self.lock:
            return Response(200, self.render_approval(request.params["author"], day))

    def _waiting(self, _request: Request) -> Response:
        with self.lock:
            rows = [self.render_approval(author, start)
                    for (author, start), s in sorted(self.approvals.items())
                    if s["key"] == "WAITING_FOR_APPROVAL"]
        return Response(200, {"self": f"{self.url}/4/timesheet-approvals/waiting",
                              "metadata": {"count": len(rows)}, "results": rows})

    def _act(self, request: Request) -> Response:
        action, day = request.params["action"], request.arg("from")
        if action not in ACTIONS or not day:
            return tempo_error(400, "unknown action, or from missing")
        return Response(200, self.act(request.params["author"], day, action))

    def _accounts(self, _request: Request) -> Response:
        with self.lock:
            rows = [dict(a, self=f"{self.url}/4/accounts/{a['key']}")
                    for a in self.accounts.values()]
        return Response(200, {"self": f"{self.url}/4/accounts", "results": rows,
                              "metadata": {"count": len(rows), "offset": 0, "limit": LIMIT_MAX}})

    def _periods(self, request: Request) -> Response:
        first, last = request.arg("from"), request.arg("to")
        if not first or not last:
            return tempo_error(400, "from and to are required")
        periods, day = [], first
        while day <= last:
            start, end = period_of(day)
            periods.append({"from": start, "to": end})
            following = date.fromisoformat(end).toordinal() + 1
            day = date.fromordinal(following).isoformat()
        return Response(200, {"self": f"{self.url}/4/periods",
                              "metadata": {"count": len(periods)}, "periods": periods})

    def _issue(self, request: Request) -> Response:
        with self.lock:
            found = next((i for i in self.issues.values()
                          if request.params["id"] in (i["id"], i["key"])), None)
        if found is None:
            return Response(404, {"errorMessages": ["Issue does not exist or you do not have "
                                                    "permission to see it."], "errors": {}})
        return Response(200, {**found, "self": f"{self.url}/rest/api/3/issue/{found['id']}"})

    # -- writes (Tempo as the client writes) ------------------------------------------------------
    def _input(self, request: Request) -> dict[str, Any] | str:
        try:
            body = request.json()
        except ValueError:
            return "the body is not JSON"
        if not isinstance(body, dict):
            return "the body must be a JSON object"
        for name in ("authorAccountId", "startDate", "timeSpentSeconds"):
            if body.get(name) in (None, ""):
                return f"{name} is required"
        if not isinstance(body["timeSpentSeconds"], int) or body["timeSpentSeconds"] < 0:
            return "timeSpentSeconds must be a whole number of seconds"
        return body

    def _create(self, request: Request) -> Response:
        body = self._input(request)
        if isinstance(body, str):
            return tempo_error(400, body)
        if body.get("issueId") is None:
            return tempo_error(400, "issueId is required")
        values = body.get("attributes") or []
        account = next((v.get("value") for v in values if isinstance(v, dict)
                        and v.get("key") == ACCOUNT_ATTRIBUTE), None)
        created = self.log(author=str(body["authorAccountId"]), issue=int(body["issueId"]),
                           day=str(body["startDate"]), seconds=body["timeSpentSeconds"],
                           billable=body.get("billableSeconds"), account=account,
                           description=str(body.get("description") or ""),
                           start_time=str(body.get("startTime") or "09:00:00"))
        return Response(200, created)

    def _update(self, request: Request) -> Response:
        body = self._input(request)
        if isinstance(body, str):
            return tempo_error(400, body)
        with self.lock:
            tempo_id = next((i for i in self.worklogs if str(i) == request.params["id"]), None)
            if tempo_id is None:
                return tempo_error(404, f"Worklog {request.params['id']} does not exist")
            fields = {"author": str(body["authorAccountId"]), "startDate": body["startDate"],
                      "timeSpentSeconds": body["timeSpentSeconds"],
                      "billableSeconds": body.get("billableSeconds",
                                                  body["timeSpentSeconds"]),
                      "description": str(body.get("description") or "")}
            return Response(200, self.edit(tempo_id, **fields))

    def _delete(self, request: Request) -> Response:
        with self.lock:
            tempo_id = next((i for i in self.worklogs if str(i) == request.params["id"]), None)
            if tempo_id is None:
                return tempo_error(404, f"Worklog {request.params['id']} does not exist")
            self.delete(tempo_id)
        return Response(204, None)

    # -- Jira's worklog webhooks -----------------------------------------------------------
    def send_webhook(self, url: str, kind: str, tempo_id: int, *, secret: str,
                     timestamp_ms: int | None = None, signature: str | None = None,
                     jira_id: int | None = None) -> httpx.Response:
        """POST Jira's ``worklog_created|updated|deleted`` for a worklog (the
        one held now, or, once deleted, by ``jira_id``), signed with ``secret``."""
        with self.lock:
            held = self.worklogs.get(tempo_id)
            worklog = {"id": str(held["jiraWorklogId"] if held else jira_id),
                       "issueId": str(held["issueId"]) if held else None,
                       "author": {"accountId": held["author"]} if held else None,
                       "timeSpentSeconds": held["timeSpentSeconds"] if held else None,
                       "updated": held["updatedAt"] if held else None}
        body = json.dumps({"timestamp": timestamp_ms if timestamp_ms is not None
                           else math.floor(time.time() * 1000),
                           "webhookEvent": f"worklog_{kind}", "worklog": worklog}).encode()
        with httpx.Client(timeout=10) as client:
            return client.post(url, content=body, headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, body) if signature is None else signature})
