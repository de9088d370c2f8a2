"""HTTP client of Tempo's REST API v4 (Jira time tracking): the only code here
that speaks to it.

A personal or OAuth bearer token (``Authorization: Bearer``). Lists answer
``{"results": [...], "metadata": {"count", "offset", "limit", "next"?}}``,
paged by ``offset``/``limit`` (at most 5,000; ``next`` only while more pages
exist). Tempo's gateway allows 5 requests a second whatever the auth, and
asks a client that gets a 429 to wait at least a second before it retries
(Tempo's help centre, docs/connectors/tempo.md "Sources"); the bucket and
``VendorHttp`` keep to both.
Errors are ``{"errors": {"message"}}`` as JSON for 400 and 404, text/html
for 401 and 403.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from billbridge.connectors.base import PermanentError, RateLimit
from billbridge.connectors.http import VendorHttp, error_object, json_of
from billbridge.connectors.paging import PageGuard
from billbridge.connectors.ratelimit import MonotonicClock

DEFAULT_BASE_URL = "https://api.tempo.io/4"
LIMIT_MAX = 5000  # v4's maximum per call (v3: 1,000), per Tempo's v3/v4 comparison
REQUESTS_PER_SECOND = 5  # the API gateway's limit, whatever the auth (help centre)
# The pace we keep by default: a tenth under the limit, so that calls bunched
# by the network on their way still arrive within the gateway's count.
DEFAULT_PACE = 4.5
ORDER_BY = "UPDATED"  # unverified: the order a keyset walk of updatedFrom relies on


def tempo_rate_limit(per_second: float = DEFAULT_PACE) -> RateLimit:
    """Evenly spaced calls (burst 1): never more than ``per_second`` in any second."""
    return RateLimit(per_second, 1.0, burst=1)


def tempo_error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of ``{"errors": {"message"}}`` (or a list of them);
    the start of the text for the HTML answers of 401 and 403."""
    if response.status_code in (401, 403):
        text = " ".join(re.sub(r"<[^>]+>", " ", response.text).split())[:120]
        return f"HTTP_{response.status_code}", (
            f"{text or 'refused'}: the token was refused; give the connection a valid Tempo "
            "API token (Tempo > Settings > API integration) with access to worklogs")
    body = error_object(response)
    if isinstance(body, tuple):
        return body
    errors = body.get("errors")
    if isinstance(errors, dict):
        errors = [errors]
    if isinstance(errors, list) and errors:
        return (f"HTTP_{response.status_code}",
                "; ".join(str(e.get("message") if isinstance(e, dict) else e) for e in errors))
    return f"HTTP_{response.status_code}", str(body)[:200]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a Tempo list: its results and whether Tempo offers more."""

    records: list[dict[str, Any]]
    more: bool


def jira_error(response: httpx.Response) -> tuple[str, str]:
    """Jira's ``{"errorMessages": [...], "errors": {field: message}}``."""
    body = error_object(response)
    if isinstance(body, tuple):
        return body
    messages = [str(m) for m in body.get("errorMessages") or []]
    fields = body.get("errors")
    if isinstance(fields, dict):
        messages += [f"{k}: {v}" for k, v in fields.items()]
    return f"HTTP_{response.status_code}", "; ".join(messages) or str(body)[:200]


class JiraIssues:
    """Jira Cloud's issues, read for their keys: Tempo v4 names a worklog's
    issue by id only, and people name issues by key. Basic auth with an
    Atlassian account's e-mail and API token (Jira's own scheme)."""

    def __init__(self, base_url: str, *, email: str, api_token: str,
                 rate_limit: RateLimit | None = None, clock: MonotonicClock | None = None,
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        basic = base64.b64encode(f"{email}:{api_token}".encode()).decode()
        self.http = VendorHttp("Jira", base_url.rstrip("/"),
                               rate_limit=rate_limit or tempo_rate_limit(10),
                               authorise=lambda: {"Authorization": f"Basic {basic}"},
                               read_error=jira_error, clock=clock, timeout=timeout,
                               transport=transport, headers={"Accept": "application/json"})

    def close(self) -> None:
        self.http.close()

    def key(self, issue_id: Any) -> str | None:
        """The issue's key (``GLX-12``); None when Jira has no such issue for us."""
        response = self.http.request("GET", f"/rest/api/3/issue/{issue_id}",
                                     f"issue {issue_id}", expected=(404,),
                                     params={"fields": "summary"})
        if response.status_code == 404:
            return None
        body = json_of(response)
        key = body.get("key") if isinstance(body, dict) else None
        return str(key) if key else None


class TempoClient:
    """One Tempo instance, reached with one token. Thread-safe: the poller and
    the webhook door share it and together keep within the 5 requests a second."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, token: str,
                 rate_limit: RateLimit | None = None, order_by: str | None = ORDER_BY,
                 jira: JiraIssues | None = None, clock: MonotonicClock | None = None,
                 max_429_retries: int = 5, max_retry_wait: float = 15.0, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.order_by = order_by or None
        self.jira = jira  # where issue keys are read, when tasks are mapped by key
        self.http = VendorHttp("Tempo", self.base_url,
                               rate_limit=rate_limit or tempo_rate_limit(),
                               authorise=lambda: {"Authorization": f"Bearer {token}"},
                               read_error=tempo_error, clock=clock,
                               max_429_retries=max_429_retries, max_retry_wait=max_retry_wait,
                               timeout=timeout, transport=transport,
                               headers={"Accept": "application/json"})

    def close(self) -> None:
        self.http.close()
        if self.jira is not None:
            self.jira.close()

    @staticmethod
    def _page(body: Any, what: str) -> Page:
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise PermanentError(f"Tempo {what}: the answer has no results list: "
                                 f"{str(body)[:200]}", code="UNEXPECTED_ANSWER")
        metadata = body.get("metadata")
        more = isinstance(metadata, dict) and bool(metadata.get("next"))
        return Page([r for r in body["results"] if isinstance(r, dict)], more)

    def search(self, *, updated_from: str | None, offset: int, limit: int,
               **filters: Any) -> Page:
        """``POST /worklogs/search``: worklogs updated from ``updated_from``
        (and the body's other filters), in ``order_by`` order."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if self.order_by:
            params["orderBy"] = self.order_by
        body = {k: v for k, v in {"updatedFrom": updated_from, **filters}.items()
                if v is not None}
        answer = self.http.json("POST", "/worklogs/search", "worklog search", params=params,
                                json=body)
        return self._page(answer, "worklog search")

    def walk(self, path: str, params: Mapping[str, Any], *,
             limit: int = LIMIT_MAX) -> Iterator[dict[str, Any]]:
        """Every record of a dated list (``/worklogs``, ``/worklogs/user/{id}``)
        by offset; a page that repeats the last one stops the walk."""
        offset, guard = 0, PageGuard(f"Tempo {path}")
        while True:
            answer = self.http.json("GET", path, f"{path} at {offset}",
                                    params={**params, "offset": offset, "limit": limit})
            page = self._page(answer, path)
            ids = tuple(str(r.get("tempoWorklogId")) for r in page.records)
            if ids:
                guard.once(ids, f"the records at offset {offset}", repeat="answered")
            yield from page.records
            if not page.more or not page.records:
                return
            offset += len(page.records)

    def _one(self, path: str, what: str) -> dict[str, Any] | None:
        response = self.http.request("GET", path, f"Tempo {what}", expected=(404,))
        if response.status_code == 404:
            return None
        body = json_of(response)
        return body if isinstance(body, dict) else None

    def worklog(self, tempo_id: Any) -> dict[str, Any] | None:
        """One worklog by Tempo id; None when Tempo says 404 (deleted)."""
        return self._one(f"/worklogs/{tempo_id}", f"worklog {tempo_id}")

    def jira_worklog(self, jira_id: Any) -> dict[str, Any] | None:
        """The Tempo worklog of a Jira worklog id; None when there is none."""
        return self._one(f"/worklogs/jira/{jira_id}", f"worklog of Jira worklog {jira_id}")

    def issue_key(self, issue_id: Any, known: dict[str, str | None]) -> str | None:
        """The Jira key of an issue id, read once into ``known`` (the caller's
        cache, one poll long); None without a Jira connection."""
        if self.jira is None or issue_id in (None, ""):
            return None
        if str(issue_id) not in known:
            known[str(issue_id)] = self.jira.key(issue_id)
        return known[str(issue_id)]

    def approval(self, account_id: str, day: str) -> dict[str, Any]:
        """The timesheet approval of ``account_id``'s period that holds ``day``."""
        answer = self.http.json("GET", f"/timesheet-approvals/user/{account_id}",
                                f"timesheet approval of {account_id} on {day}",
                                params={"from": day, "to": day})
        if not isinstance(answer, dict):
            raise PermanentError(f"Tempo timesheet approval of {account_id}: not an object",
                                 code="UNEXPECTED_ANSWER")
        return answer
