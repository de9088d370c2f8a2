"""HTTP client of Sage Intacct's XML Web Services gateway: the only code here
that speaks to it.

Every call is one ``POST`` of a ``<request>`` to the gateway
(``/ia/xml/xmlgw.phtml``; sources in docs/connectors/sage-intacct.md): a
``<control>`` block with the Web Services sender's id and password, and an
``<operation>`` whose ``<authentication>`` is a session (``getAPISession``
once per entity, kept until Intacct refuses it) and whose ``<content>``
holds many ``<function>`` elements, each with its own ``controlid``. The answer carries one
``<result>`` per function, settled one by one: without
``transaction="true"`` a failing function rejects only itself.

Write requests carry ``<uniqueid>true</uniqueid>`` (the documented
recommendation for creates and updates) and each function's ``controlid`` is
the command's idempotency key, so Intacct refuses to run a function again
that it completed before. Throttling is read in both documented spellings:
"API rate limit exceeded" inside an HTTP 200 (the fylein SDK's test) and an
HTTP 429 (GW-0010, third-party); both are transient.
"""

from __future__ import annotations

import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from billbridge.connectors.base import PermanentError, RateLimit, TransientError
from billbridge.connectors.http import VendorHttp
from billbridge.connectors.paging import PageGuard
from billbridge.connectors.ratelimit import MonotonicClock, RealClock

DEFAULT_ENDPOINT = "https://api.intacct.com/ia/xml/xmlgw.phtml"
GATEWAY_PATH = "/ia/xml/xmlgw.phtml"
RATE_LIMIT_TEXT = "API rate limit exceeded"
INVALID_SENDER = "XL03000006"  # "Invalid Web Services Authorization" (IFAQ)
REPLAYED = "XL03000009"
"""The error number the emulator answers for a function whose ``controlid``
completed before under ``uniqueid``. Intacct documents the refusal, not its
shape, so the target reads no number: any failed write is looked up."""
DTD_VERSION = "3.0"


def element(tag: str, value: Any) -> ET.Element:
    """``value`` as XML: a mapping is child elements, a list repeats the tag,
    a Decimal keeps its digits, booleans are ``true``/``false``, None is empty."""
    node = ET.Element(tag)
    fill(node, value)
    return node


def fill(node: ET.Element, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key.startswith("@"):
                node.set(key[1:], str(item))
            elif isinstance(item, list):
                node.extend(element(key, one) for one in item)
            else:
                node.append(element(key, item))
    elif isinstance(value, bool):
        node.text = "true" if value else "false"
    elif value is not None:
        node.text = str(value)


def record_of(node: ET.Element) -> dict[str, Any]:
    """An Intacct record element as a mapping of its fields (text, or a
    mapping for a nested element such as ``DISPLAYCONTACT``)."""
    out: dict[str, Any] = {}
    for child in node:
        out[child.tag] = record_of(child) if len(child) else (child.text or "")
    return out


@dataclass(frozen=True, slots=True)
class IntacctError:
    errorno: str
    description: str
    description2: str
    correction: str

    def __str__(self) -> str:
        parts = [p for p in (self.description, self.description2, self.correction) if p]
        return f"{self.errorno}: {' '.join(parts)}".strip()


def errors_of(node: ET.Element | None) -> list[IntacctError]:
    if node is None:
        return []
    return [IntacctError(e.findtext("errorno") or "", e.findtext("description") or "",
                         e.findtext("description2") or "", e.findtext("correction") or "")
            for e in node.iter("error")]


@dataclass(frozen=True, slots=True)
class Function:
    """One ``<function controlid=...>`` of a request: ``body`` is its one
    child (``<create>``, ``<query>``, ``<create_invoice>``...)."""

    controlid: str
    body: ET.Element


@dataclass(frozen=True, slots=True)
class Result:
    """One function's ``<result>``, or one REST subrequest's answer (its
    ``controlid`` the ``Idempotency-Key``, its ``key`` the record's)."""

    controlid: str
    function: str
    status: str  # success, failure or aborted
    data: ET.Element | None = None
    key: str | None = None  # what a legacy function (create_invoice) answers
    errors: list[IntacctError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def throttled(self) -> bool:
        """The gateway's throttle text, or a REST subrequest's 429."""
        return any(RATE_LIMIT_TEXT in str(e) or e.errorno in ("429", "HTTP_429")
                   for e in self.errors)

    def records(self) -> list[dict[str, Any]]:
        return [record_of(child) for child in self.data] if self.data is not None else []

    def message(self) -> str:
        return "; ".join(str(e) for e in self.errors) or f"{self.function} {self.status}"


@dataclass(frozen=True, slots=True)
class Page:
    records: list[dict[str, Any]]
    total: int
    remaining: int


@dataclass
class _Session:
    sessionid: str
    endpoint: str


def _read_error(response: httpx.Response) -> tuple[str, str]:
    try:
        errors = errors_of(ET.fromstring(response.content))
    except ET.ParseError:
        return f"HTTP_{response.status_code}", response.text[:200]
    if errors:
        return errors[0].errorno or f"HTTP_{response.status_code}", str(errors[0])
    return f"HTTP_{response.status_code}", response.text[:200]


class IntacctClient:
    """One Intacct company through one Web Services sender, shared by the
    connection's target and source. A session per entity (``locationid``;
    ``""`` is the top level), opened on first use."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, sender_id: str,
                 sender_password: str, user_id: str, company_id: str, user_password: str,
                 rate_limit: RateLimit | None = None, concurrency: int = 2,
                 uniqueid: bool = True, throttle_wait: float = 5.0, max_throttled: int = 3,
                 clock: MonotonicClock | None = None, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not (sender_id and user_id and company_id):
            raise ValueError("sage-intacct: sender_id, user_id and company_id are required")
        self.sender = (sender_id, sender_password)
        self.login = (user_id, company_id, user_password)
        self.uniqueid = uniqueid
        self.throttle_wait, self.max_throttled = throttle_wait, max_throttled
        self.clock = clock or RealClock()
        self.rate_limit = rate_limit or RateLimit(2, 1.0, burst=2)
        self.http = VendorHttp("sage-intacct", endpoint, rate_limit=self.rate_limit,
                               read_error=_read_error, concurrency=concurrency,
                               clock=self.clock, timeout=timeout, transport=transport,
                               headers={"Content-Type": "application/xml"})
        self.endpoint = endpoint
        self.writes = 0  # write requests sent, answered or not
        self.sessions_opened = 0
        self._sessions: dict[str, _Session] = {}
        self._opening = threading.Lock()

    def close(self) -> None:
        self.http.close()

    # -- the envelope ----------------------------------------------------------------
    def _envelope(self, functions: Sequence[Function], authentication: ET.Element,
                  *, write: bool) -> bytes:
        request = ET.Element("request")
        fill(ET.SubElement(request, "control"), {
            "senderid": self.sender[0], "password": self.sender[1],
            "controlid": uuid.uuid4().hex, "uniqueid": write and self.uniqueid,
            "dtdversion": DTD_VERSION, "includewhitespace": False})
        operation = ET.SubElement(request, "operation")
        operation.append(authentication)
        content = ET.SubElement(operation, "content")
        for function in functions:
            node = ET.SubElement(content, "function", controlid=function.controlid)
            node.append(function.body)
        return bytes(ET.tostring(request, encoding="utf-8", xml_declaration=True))

    def _post(self, url: str, body: bytes, what: str) -> ET.Element:
        """One POST; the answer's ``<response>``, with the throttling answer
        inside an HTTP 200 waited out like a 429 and then transient."""
        for throttled in range(self.max_throttled + 1):
            response = self.http.request("POST", url, what, content=body)
            if RATE_LIMIT_TEXT not in response.text:
                break
            self.http.bucket.drain()
            if throttled < self.max_throttled:
                self.clock.sleep(self.throttle_wait)
        else:
            raise TransientError(f"sage-intacct {what}: {RATE_LIMIT_TEXT} after "
                                 f"{self.max_throttled} waits", code="RATE_LIMITED",
                                 retry_after=self.throttle_wait)
        try:
            root = ET.fromstring(response.content)
        except ET.ParseError:
            # To a write this is as good as a lost answer: the resend looks it up.
            raise TransientError(f"sage-intacct {what}: the answer is not XML: "
                                 f"{response.text[:200]!r}", code="TARGET_PROTOCOL") from None
        if root.findtext("control/status") == "failure":
            errors = errors_of(root.find("errormessage"))
            text = "; ".join(str(e) for e in errors) or "the request was refused"
            code = "TARGET_AUTH" if any(e.errorno == INVALID_SENDER for e in errors) \
                else (errors[0].errorno if errors else "TARGET_REJECTED")
            raise PermanentError(f"sage-intacct {what}: {text}", code=code)
        return root

    # -- sessions --------------------------------------------------------------------
    def session(self, location: str = "") -> _Session:
        """The entity's API session: ``getAPISession`` with the company user's
        login, its ``locationid`` naming the entity (fylein's sageintacctsdk)."""
        with self._opening:
            found = self._sessions.get(location)
            if found is not None:
                return found
            login: dict[str, Any] = {"userid": self.login[0], "companyid": self.login[1],
                                     "password": self.login[2]}
            if location:
                login["locationid"] = location
            body = self._envelope([Function(uuid.uuid4().hex, ET.Element("getAPISession"))],
                                  element("authentication", {"login": login}), write=False)
            root = self._post(self.endpoint, body, "getAPISession")
            operation = root.find("operation")
            if operation is None or operation.findtext("authentication/status") != "success":
                errors = errors_of(operation.find("errormessage") if operation is not None
                                   else None)
                raise PermanentError("sage-intacct getAPISession: the company user's login "
                                     f"was refused: {'; '.join(map(str, errors))}",
                                     code="TARGET_AUTH")
            api = operation.find("result/data/api")
            if api is None or not api.findtext("sessionid"):
                raise PermanentError("sage-intacct getAPISession: no session in the answer",
                                     code="TARGET_PROTOCOL")
            self.sessions_opened += 1
            found = _Session(api.findtext("sessionid") or "",
                             api.findtext("endpoint") or self.endpoint)
            self._sessions[location] = found
            return found

    # -- functions -------------------------------------------------------------------
    def execute(self, functions: Sequence[Function], *, location: str = "",
                write: bool = False, what: str = "request") -> list[Result]:
        """Run ``functions`` in one request as the entity ``location``; one
        result per function, in the order sent. A session Intacct no longer
        knows is opened again once (nothing ran under it)."""
        if write:
            self.writes += 1
        for again in (False, True):
            session = self.session(location)
            body = self._envelope(functions, element("authentication",
                                                     {"sessionid": session.sessionid}),
                                  write=write)
            operation = self._post(session.endpoint, body, what).find("operation")
            if operation is None:
                raise TransientError(f"sage-intacct {what}: an answer without <operation>",
                                     code="TARGET_PROTOCOL")
            if operation.findtext("authentication/status") == "success":
                return self._results(operation, functions, what)
            with self._opening:
                self._sessions.pop(location, None)
            if again:
                errors = errors_of(operation.find("errormessage"))
                raise PermanentError(f"sage-intacct {what}: the session was refused: "
                                     f"{'; '.join(map(str, errors))}", code="TARGET_AUTH")
        raise AssertionError("unreachable")

    @staticmethod
    def _results(operation: ET.Element, functions: Sequence[Function],
                 what: str) -> list[Result]:
        by_id: dict[str, Result] = {}
        for node in operation.findall("result"):
            data = node.find("data")
            key = node.findtext("key")
            result = Result(node.findtext("controlid") or "", node.findtext("function") or "",
                            node.findtext("status") or "", data, key,
                            errors_of(node.find("errormessage")))
            by_id[result.controlid] = result
        missing = [f.controlid for f in functions if f.controlid not in by_id]
        if missing:
            raise TransientError(f"sage-intacct {what}: no result for functions {missing[:3]}",
                                 code="TARGET_PROTOCOL")
        return [by_id[f.controlid] for f in functions]

    def query(self, obj: str, fields: Sequence[str], *, where: Any = None,
              order: Sequence[str] = (), offset: int = 0, size: int = 1000,
              location: str = "") -> Page:
        """One page of the generic ``query`` function; ``where`` is the
        filter as a mapping (``{"in": {"field": .., "value": [..]}}``)."""
        body: dict[str, Any] = {"object": obj, "select": {"field": list(fields)}}
        if where is not None:
            body["filter"] = where
        if order:
            body["orderby"] = {"order": [{"field": f, "ascending": None} for f in order]}
        body["pagesize"] = size
        body["offset"] = offset
        [result] = self.execute([Function(uuid.uuid4().hex, element("query", body))],
                                location=location, what=f"query {obj}")
        if not result.ok:
            if result.throttled:
                raise TransientError(f"sage-intacct query {obj}: {result.message()}",
                                     code="RATE_LIMITED", retry_after=self.throttle_wait)
            raise PermanentError(f"sage-intacct query {obj}: {result.message()}",
                                 code="TARGET_REJECTED")
        data = result.data
        records = [record_of(r) for r in data] if data is not None else []
        total = int((data.get("totalcount") if data is not None else None) or len(records))
        remaining = int((data.get("numremaining") if data is not None else None) or 0)
        return Page(records, total, remaining)

    def query_all(self, obj: str, fields: Sequence[str], *, where: Any = None,
                  order: Sequence[str] = (), size: int = 1000,
                  location: str = "") -> list[dict[str, Any]]:
        """Every page of a query (for look-ups; the status source pages itself)."""
        return every_page(f"sage-intacct query {obj}", 0, lambda offset: self.query(
            obj, fields, where=where, order=order, offset=offset, size=size,
            location=location))


def every_page(what: str, first: int, fetch: Callable[[int], Page]) -> list[dict[str, Any]]:
    """The records of every page ``fetch`` reads, from position ``first`` (an
    offset, or a 1-based start) on, until a page says nothing remains."""
    guard = PageGuard(what)
    found: list[dict[str, Any]] = []
    position = first
    while True:
        guard.once(position)
        page = fetch(position)
        found += page.records
        if page.remaining <= 0 or not page.records:
            return found
        position += len(page.records)


def decimal_text(value: Decimal) -> str:
    """A Decimal as Intacct's numbers are written: plain digits, no exponent."""
    return format(value, "f")
