"""The Xero client against the emulator over real HTTP: OAuth refresh and
rotation, the tenant header, and the tenant's minute, day and concurrency
limits, kept by the client and enforced by the emulator on one manual
clock."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from billbridge.connectors.base import Connection, PermanentError, RateLimit, TransientError
from billbridge.connectors.ratelimit import QUOTA_EXHAUSTED
from billbridge.connectors.xero.client import XeroClient
from billbridge.connectors.xero.emulator import API, DEFAULT_TENANT, XeroEmulator
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.engine import audit, secrets
from billbridge.engine.clock import ManualClock

FAST = RateLimit(10_000, 1, burst=10_000)  # no client pacing: let the emulator refuse


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def xero(clock: ManualClock) -> Iterator[XeroEmulator]:
    emulator = XeroEmulator(clock=clock.monotonic)
    with emulator:
        yield emulator


def client_for(xero: XeroEmulator, clock: Any = None, **overrides: Any) -> XeroClient:
    settings: dict[str, Any] = {
        "tenant_id": DEFAULT_TENANT, "access_token": "xero-access-token",
        "refresh_token": "xero-refresh-token", "client_id": "xero-client-id",
        "client_secret": "xero-client-secret", "clock": clock, **overrides}
    return XeroClient(f"{xero.url}{API}", **settings)


def statuses(xero: XeroEmulator) -> list[int]:
    return [status for _m, _p, status in xero.calls]


def test_an_expired_access_token_is_refreshed_once_and_the_rotated_refresh_token_kept(
        xero: XeroEmulator, clock: ManualClock) -> None:
    kept: list[tuple[str, str]] = []
    client = client_for(xero, clock, on_tokens=lambda a, r: kept.append((a, r)))
    xero.expire_access_tokens()
    assert client.base_currency() == "USD"
    assert statuses(xero) == [401, 200]
    assert kept == [(client.access_token, client.refresh_token)]
    assert client.refresh_token == xero.refresh_token != "xero-refresh-token"
    # Known expiry from now on: refreshed a minute before it lapses, with no 401.
    clock.advance(1800 - 30)
    client.base_currency()
    assert statuses(xero) == [401, 200, 200] and len(kept) == 2


def test_a_refresh_whose_answer_was_lost_is_repeated_within_xeros_grace(
        xero: XeroEmulator, clock: ManualClock) -> None:
    client = client_for(xero, clock)
    xero.faults.script([FaultRule(Fault.LOST_ACK, path_prefix="/connect/token")])
    with pytest.raises(TransientError):
        client.refresh()  # Xero rotated the token; we never heard the new one
    clock.advance(60)
    client.refresh()  # the replaced token still works for 30 minutes
    assert client.refresh_token == xero.refresh_token


def test_a_refused_refresh_token_is_a_configuration_fault_saying_to_reconnect(
        xero: XeroEmulator, clock: ManualClock) -> None:
    client = client_for(xero, clock, refresh_token="revoked")
    xero.expire_access_tokens()
    with pytest.raises(PermanentError) as refused:
        client.base_currency()
    assert refused.value.code == "TARGET_AUTH" and "reconnect" in str(refused.value)


def test_the_wrong_tenant_is_a_configuration_fault(xero: XeroEmulator) -> None:
    with pytest.raises(PermanentError) as refused:
        client_for(xero, tenant_id="someone-elses-org").base_currency()
    assert refused.value.code == "TARGET_AUTH" and "403" in str(refused.value)
    with pytest.raises(ValueError, match="tenant_id is required"):
        client_for(xero, tenant_id="")


def test_the_client_paces_itself_under_the_minute_limit(xero: XeroEmulator,
                                                         clock: ManualClock) -> None:
    client = client_for(xero, clock)
    started = clock.monotonic()
    for _ in range(70):
        client.records("Organisations", "organisation", path="/Organisation")
    assert 429 not in statuses(xero)
    assert clock.monotonic() - started >= 60  # 70 calls cannot fit in one minute


def test_a_minute_429_is_waited_out_for_its_retry_after(clock: ManualClock) -> None:
    xero = XeroEmulator(clock=clock.monotonic, minute_limit=2)
    with xero:
        client = client_for(xero, clock, rate_limit=FAST)
        for _ in range(3):
            client.base_currency()
        assert statuses(xero) == [200, 200, 429, 200]
    assert clock.monotonic() >= 60


def test_the_day_limit_defers_work_until_it_resets_without_calling(
        clock: ManualClock) -> None:
    xero = XeroEmulator(clock=clock.monotonic, daily_limit=3)
    with xero:
        client = client_for(xero, clock)
        for _ in range(3):
            client.base_currency()
        with pytest.raises(TransientError) as spent:
            client.base_currency()  # X-DayLimit-Remaining said 0: no request is made
        assert spent.value.code == QUOTA_EXHAUSTED and len(xero.calls) == 3


def test_a_day_429_from_calls_made_elsewhere_defers_for_its_retry_after(
        clock: ManualClock) -> None:
    xero = XeroEmulator(clock=clock.monotonic, daily_limit=2)
    with xero:
        headers = {"Authorization": "Bearer xero-access-token",
                   "xero-tenant-id": DEFAULT_TENANT}
        for _ in range(2):  # another integration spends the day
            httpx.get(f"{xero.url}{API}/Organisation", headers=headers)
        clock.advance(600)
        client = client_for(xero, clock)
        with pytest.raises(TransientError) as spent:
            client.base_currency()
        assert spent.value.code == QUOTA_EXHAUSTED
        assert spent.value.retry_after == 86_400 - 600
        with pytest.raises(TransientError):
            client.base_currency()
        assert statuses(xero) == [200, 200, 429]


def test_more_than_five_calls_in_flight_are_refused_and_the_client_never_sends_them() -> None:
    xero = XeroEmulator(latency=0.3, concurrent_limit=2)
    with xero:
        headers = {"Authorization": "Bearer xero-access-token",
                   "xero-tenant-id": DEFAULT_TENANT}
        gate = threading.Barrier(4)
        answers: list[httpx.Response] = []

        def raw() -> None:
            gate.wait()
            answers.append(httpx.get(f"{xero.url}{API}/Organisation",
                                     headers=headers))
        _together(raw)
        refused = [a for a in answers if a.status_code == 429]
        assert refused and refused[0].headers["X-Rate-Limit-Problem"] == "concurrent"

        client = client_for(xero, rate_limit=FAST, concurrency=2)
        xero.calls.clear()
        gate = threading.Barrier(4)

        def paced() -> None:
            gate.wait()
            client.base_currency()
        _together(paced)
        assert statuses(xero) == [200] * 4


def _together(work: Any) -> None:
    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)


def test_billbridge_emulator_run_xero_serves_the_api() -> None:
    process = subprocess.Popen([sys.executable, "-m", "billbridge", "emulator", "run", "xero"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split("listening on ")[1].strip()
        answer = httpx.get(f"{url}{API}/Organisation", headers={
            "Authorization": "Bearer xero-access-token", "xero-tenant-id": DEFAULT_TENANT})
        assert answer.json()["Organisations"][0]["BaseCurrency"] == "USD"
        assert answer.headers["X-DayLimit-Remaining"] == "4999"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_stored_connection_keeps_the_rotated_refresh_token_across_restarts(
        xero: XeroEmulator, engine: Engine) -> None:
    from billbridge.connectors import xero as xero_connector

    vault = secrets.Vault(secrets.new_key())
    now = ManualClock().now
    with engine.begin() as conn:
        secrets.save(conn, vault, Connection("books", "xero", xero.url, {
            "tenant_id": DEFAULT_TENANT, "access_token": "xero-access-token",
            "refresh_token": "xero-refresh-token", "client_id": "xero-client-id",
            "client_secret": "xero-client-secret"}), actor="ops", at=now())
    client = xero_connector.client_for(secrets.load_kept(engine, vault, "books", now))
    xero.expire_access_tokens()
    assert client.base_currency() == "USD"
    with engine.connect() as conn:
        stored = secrets.load(conn, vault, "books").credentials
        rotated = [e for e in audit.entries(conn) if e["action"] == "connection.rotated"]
        assert audit.verify(conn) == []
    # A hub restarted now starts from the token Xero issued, not the spent one.
    assert stored["refresh_token"] == xero.refresh_token != "xero-refresh-token"
    assert stored["access_token"] == client.access_token
    assert [e["detail"]["credential_keys"] for e in rotated] == [["access_token",
                                                                  "refresh_token"]]
    assert xero.refresh_token not in str(rotated)
