"""The OData code the Microsoft connectors and their emulators share:
connectors/odata.py (the client side) against emulation/odata.py (the
server side), without a server in between."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from billbridge.connectors.base import PermanentError
from billbridge.connectors.dynamics_finance.emulator.query import FINANCE
from billbridge.connectors.dynamics_sales.emulator.odata import DATAVERSE
from billbridge.connectors.odata import (
    Answer,
    ODataService,
    Operation,
    decode_batch,
    encode_batch,
    key_segment,
    next_links,
)
from billbridge.connectors.ratelimit import rolling_window
from billbridge.emulation.odata import (
    InnerResponse,
    ODataError,
    max_page_size,
    next_link,
    parse_batch,
    parse_filter,
    parse_key,
    render_batch,
)


def test_a_batch_the_client_writes_is_the_requests_the_emulator_reads() -> None:
    content_type, body, ids = encode_batch("/data", [
        [Operation("POST", "Lines", {"Hours": Decimal("1.10"), "SalesPrice": Decimal("150.00")}),
         Operation("PATCH", key_segment("Projects", {"dataAreaId": "usmf", "Id": "O'Neil"}),
                   {"Name": "x"}, {"If-Match": "*"})],
        [Operation("DELETE", "Lines(1)")]])
    parts = parse_batch(body, content_type)
    assert [p.changeset for p in parts] == [True, True]
    first, second = parts[0].requests
    assert (first.method, first.url) == ("POST", "/data/Lines")
    assert first.body == b'{"Hours":1.10,"SalesPrice":150.00}'  # exact, never a float
    assert second.url == "/data/Projects(dataAreaId='usmf',Id='O''Neil')"
    assert second.headers["if-match"] == "*"
    assert parse_key(second.url.removeprefix("/data/"), FINANCE) == \
        ("Projects", {"dataAreaId": "usmf", "Id": "O'Neil"})
    assert parts[1].requests[0].body == b""
    assert ids == {"1": (0, 0), "2": (0, 1), "3": (1, 0)}


def test_an_answer_names_which_request_of_a_refused_change_set_failed() -> None:
    _type, _body, ids = encode_batch("/data", [[Operation("POST", "A", {})],
                                               [Operation("POST", "B", {}),
                                                Operation("POST", "C", {})],
                                               [Operation("POST", "D", {})]])
    refused = json.dumps({"error": {"code": "", "message": "An error has occurred.",
                                    "innererror": {"message": "Hours must be positive."}}})
    content_type, answer = render_batch([
        [InnerResponse(201, b'{"Id":7}', {"Location": "A(7)"}, content_id="1")],
        InnerResponse(400, refused.encode(), content_id="3")])
    applied, failed, unreached = decode_batch("Finance", content_type, answer.decode(), 3, ids)
    assert applied.answers is not None
    assert applied.answers[0].json() == {"Id": 7}
    assert applied.answers[0].headers["location"] == "A(7)"
    assert failed.failure is not None and failed.failure.status == 400
    assert failed.failed_at == 1  # C, the second request of its change set
    assert failed.failure.error() == ("HTTP_400", "An error has occurred. Hours must be positive.")
    assert (unreached.answers, unreached.failure) == (None, None)


def test_a_failure_naming_another_change_sets_request_names_none() -> None:
    _type, _body, ids = encode_batch("/data", [[Operation("POST", "A", {})],
                                               [Operation("POST", "B", {})]])
    content_type, answer = render_batch([[InnerResponse(204, content_id="1")],
                                         InnerResponse(400, content_id="1")])
    [_applied, failed] = decode_batch("Finance", content_type, answer.decode(), 2, ids)
    assert failed.failure is not None and failed.failed_at is None


def test_an_error_without_an_inner_error_is_its_message() -> None:
    body = json.dumps({"error": {"code": "0x80040237", "message": "Duplicate key"}})
    assert Answer(412, body).error() == ("0x80040237", "Duplicate key")
    assert Answer(500, "not json").error() == ("HTTP_500", "not json")


def test_next_links_are_followed_and_a_link_offered_twice_stops_the_walk() -> None:
    pages = {"p2": {"value": [2], "@odata.nextLink": "p3"}, "p3": {"value": [3]}}
    walked = list(next_links(lambda: {"value": [1], "@odata.nextLink": "p2"},
                             pages.__getitem__, "Finance invoices"))
    assert [p["value"] for p in walked] == [[1], [2], [3]]
    stuck: dict[str, Any] = {"value": [], "@odata.nextLink": "p2"}
    asked: list[str] = []

    def follow(link: str) -> dict[str, Any]:
        asked.append(link)
        assert len(asked) < 5, "the walk kept following the same link"
        return stuck

    with pytest.raises(PermanentError, match="Finance invoices: the nextLink p2 was offered "
                                             "twice; stopping") as raised:
        list(next_links(lambda: stuck, follow, "Finance invoices"))
    assert raised.value.code == "PAGINATION_LOOP"
    assert asked == ["p2"]


def test_each_service_reads_its_own_literals() -> None:
    guid = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    row = {"accountid": guid, "modifiedon": "2026-03-01T10:00:00+00:00"}
    assert parse_filter(f"accountid eq {guid.lower()} and modifiedon eq 2026-03-01T10:00Z",
                        DATAVERSE)(row)
    assert not parse_filter("modifiedon gt 2026-03-01T10:00:00.5Z", DATAVERSE)(row)
    line = {"Text": "billbridge [bb:k1] 2h", "Billable": "Yes", "Hours": Decimal("2")}
    assert parse_filter("Text eq '*[bb:k1]*' and Billable eq "
                        "Microsoft.Dynamics.DataEntities.NoYes'Yes' and Hours lt 2.5",
                        FINANCE)(line)
    assert not parse_filter("Text eq '*[bb:k2]*'", FINANCE)(line)
    with pytest.raises(ODataError, match="The query operator 'has' is not supported"):
        parse_filter("Billable has 'Yes'", FINANCE)
    with pytest.raises(ODataError, match="character 'x!' is not valid"):
        parse_filter("name eq x!", DATAVERSE)


def test_pages_follow_the_preference_and_the_request() -> None:
    assert max_page_size("odata.track-changes,odata.maxpagesize=50", 5000) == 50
    assert max_page_size("odata.maxpagesize=90000", 5000) == 5000
    assert max_page_size("odata.continue-on-error", 5000) is None
    link = next_link("http://x/data/Lines", {"$top": ["9"], "$skiptoken": ["old"]},
                     drop=("$skiptoken",), **{"$skip": "3"})
    assert link == "http://x/data/Lines?%24top=9&%24skip=3"


def test_a_service_sends_a_batch_within_its_limit_and_refuses_a_larger_one_unsent() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        content_type, body = render_batch([[InnerResponse(204), InnerResponse(204)]])
        return httpx.Response(200, content=body, headers={"Content-Type": content_type})

    service = ODataService("Finance", "http://erp.test", "/data",
                           token_url="http://login.test/tenant/token", client_id="c",
                           client_secret="s", scope=None, rate_limit=rolling_window(100, 1),
                           concurrency=1, batch_limit=2, transport=httpx.MockTransport(answer))
    with pytest.raises(ValueError, match="at most 2 operations per Finance \\$batch, not 3"):
        service.batch([[Operation("POST", "A", {})] * 3])
    assert seen == [] and service.batches_sent == 0
    [applied] = service.batch([[Operation("POST", "A", {}), Operation("POST", "B", {})]])
    assert applied.answers is not None and [a.status for a in applied.answers] == [204, 204]
    sent = seen[-1]
    assert (sent.method, str(sent.url)) == ("POST", "http://erp.test/data/$batch")
    assert sent.headers["Prefer"] == "odata.continue-on-error"
    assert sent.headers["Authorization"] == "Bearer t"
    assert service.batches_sent == 1 and service.tokens_fetched == 1
    service.close()


def test_odata_2_batches_name_requests_relative_to_the_service_and_read_sap_errors() -> None:
    content_type, body, _ids = encode_batch("", [[Operation("POST", "A_BusinessPartner",
                                                            {"OrganizationBPName1": "Globex"})]],
                                            entry_type="application/json")
    (part,) = parse_batch(body, content_type)
    (inner,) = part.requests
    assert (inner.url, inner.headers["content-type"]) == ("A_BusinessPartner", "application/json")
    sap = {"error": {"code": "/IWBEP/CM_MGW_RT/010", "message": {
        "lang": "en", "value": "Sold-to party 42 does not exist"}}}
    answer_type, answer = render_batch([InnerResponse(400, json.dumps(sap).encode())],
                                       body_type="application/json")
    (result,) = decode_batch("SAP", answer_type, answer.decode(), 1)
    assert result.failure is not None
    assert b"Content-Type: application/json\r\n" in answer
    assert result.failure.error() == ("/IWBEP/CM_MGW_RT/010", "Sold-to party 42 does not exist")


def test_next_links_read_where_a_service_puts_them() -> None:
    pages = iter([{"results": [2], "__next": "p3"}, {"results": [3]}])
    walked = list(next_links(lambda: {"results": [1], "__next": "p2"}, lambda _link: next(pages),
                             "SAP rows", link_of=lambda body: body.get("__next")))
    assert [p["results"] for p in walked] == [[1], [2], [3]]
