"""The shared vendor transport: 429s ridden out with Retry-After on the
clock, one refresh on a 401, every other status classified once."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import httpx
import pytest

from billbridge.connectors.base import PermanentError, RateLimit, TransientError
from billbridge.connectors.http import VendorHttp, json_of
from billbridge.engine.clock import ManualClock

FAST = RateLimit(1000, 1, burst=1000)


def _http(handler, clock: ManualClock | None = None, **kwargs) -> VendorHttp:  # type: ignore[no-untyped-def]
    return VendorHttp("acme", "http://vendor.test", rate_limit=FAST, clock=clock or ManualClock(),
                      transport=httpx.MockTransport(handler), **kwargs)


def test_a_429_waits_its_retry_after_and_then_succeeds() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "7"}),
                    httpx.Response(429, headers={"Retry-After": "3"}),
                    httpx.Response(200, json={"ok": True})])
    clock = ManualClock()
    started = clock.monotonic()
    http = _http(lambda request: next(answers), clock)
    assert http.json("GET", "/x", "read x") == {"ok": True}
    assert clock.monotonic() - started == pytest.approx(10.0)
    assert http.requests_sent == 3


def test_a_429_storm_longer_than_the_retries_is_transient_with_retry_after() -> None:
    http = _http(lambda request: httpx.Response(429, headers={"Retry-After": "2"},
                                                json={"message": "slow down"}),
                 max_429_retries=2)
    with pytest.raises(TransientError) as caught:
        http.request("POST", "/x", "write x")
    assert caught.value.code == "HTTP_429"
    assert caught.value.retry_after == 2.0
    assert "slow down" in str(caught.value)
    assert http.requests_sent == 3


def test_a_401_refreshes_once_then_a_second_401_is_a_configuration_fault() -> None:
    tokens = iter(["new-1", "new-2"])
    state = {"token": "old"}

    def refresh() -> None:
        state["token"] = next(tokens)

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(401, json={"error": {"code": "EXPIRED", "message": "expired"}})

    http = _http(handler, refresh=refresh,
                 authorise=lambda: {"Authorization": f"Bearer {state['token']}"})
    with pytest.raises(PermanentError) as caught:
        http.request("GET", "/x", "read x")
    assert caught.value.code == "TARGET_AUTH"
    assert seen == ["Bearer old", "Bearer new-1"]


@pytest.mark.parametrize(("status", "kind", "code"), [
    (503, TransientError, "HTTP_503"),
    (400, PermanentError, "BAD_FIELD"),
    (404, PermanentError, "BAD_FIELD"),
])
def test_statuses_are_classified_with_the_vendor_code(status: int, kind: type, code: str) -> None:
    http = _http(lambda r: httpx.Response(status, json={"error": {"code": "BAD_FIELD",
                                                                  "message": "no"}}))
    with pytest.raises(kind) as caught:
        http.request("GET", "/x", "read x")
    assert caught.value.code == code


def test_expected_statuses_are_answers_not_errors() -> None:
    http = _http(lambda r: httpx.Response(300, json=[1, 2]))
    assert http.request("GET", "/x", "read x", expected=(300,)).json() == [1, 2]


def test_a_dropped_connection_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("server closed the connection", request=request)

    with pytest.raises(TransientError) as caught:
        _http(handler).request("POST", "/x", "write x")
    assert caught.value.code == "CONNECTION"


def test_the_concurrency_cap_holds_across_threads() -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return httpx.Response(200, json={})

    http = VendorHttp("acme", "http://vendor.test", rate_limit=FAST, concurrency=2,
                      transport=httpx.MockTransport(handler))
    threads = [threading.Thread(target=http.request, args=("GET", "/x", "x"))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state["peak"] == 2


def test_an_answer_that_spends_the_day_defers_and_stops_sending() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(429, headers={"X-Problem": "day"}, json={"message": "daily"})

    http = _http(handler, quota_spent=lambda r: 3600.0 if r.headers.get("x-problem") == "day"
                 else None)
    for _ in range(2):
        with pytest.raises(TransientError) as caught:
            http.request("GET", "/x", "read x")
        assert caught.value.code == "QUOTA_EXHAUSTED"
        assert caught.value.retry_after == pytest.approx(3600.0)
    assert calls == ["/x"]  # the second call was deferred without a request


def test_a_vendor_names_which_answers_mean_fetch_the_credentials_again() -> None:
    answers = iter([httpx.Response(403, headers={"x-csrf-token": "Required"}),
                    httpx.Response(200, json={"ok": True})])
    refreshed: list[int] = []
    http = _http(lambda request: next(answers), refresh=lambda: refreshed.append(1),
                 renew_on=lambda response: response.status_code == 403)
    assert http.json("POST", "/x", "write x") == {"ok": True}
    assert refreshed == [1] and http.requests_sent == 2
    plain = _http(lambda request: httpx.Response(403), refresh=lambda: refreshed.append(2))
    with pytest.raises(PermanentError):  # without it a 403 is a configuration fault at once
        plain.request("POST", "/x", "write x")
    assert refreshed == [1]


def test_a_vendor_answer_reads_its_fractions_as_decimal_and_an_empty_one_as_none() -> None:
    body = b'{"amount": 922337203685477.5807, "hours": 0.1, "count": 3}'
    read = json_of(httpx.Response(200, content=body))
    assert read == {"amount": Decimal("922337203685477.5807"), "hours": Decimal("0.1"),
                    "count": 3}
    assert type(read["count"]) is int
    assert json_of(httpx.Response(204)) is None
