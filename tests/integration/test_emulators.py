"""The fault-injecting emulator base and the generic ledger, over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from billbridge.connectors.base import (
    IdempotencyMode,
    OutboundCommand,
    PermanentError,
    ResultStatus,
    TransientError,
)
from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator, TimeSourceEmulator
from billbridge.emulation.faults import Fault, FaultRule


def command(key: str, attempt: int = 1, **data: object) -> OutboundCommand:
    return OutboundCommand(1, "ledger", "time_charge.post", key, "project:P", data or {"a": 1},
                           attempt=attempt)


@pytest.fixture
def ledger() -> Iterator[LedgerEmulator]:
    with LedgerEmulator(token="t") as emulator:
        yield emulator  # type: ignore[misc]


def test_lost_ack_applies_the_write_and_the_client_sees_a_transient_fault(
        ledger: LedgerEmulator) -> None:
    target = LedgerTarget(ledger.url, "t")
    ledger.faults.script(["lost_ack"])
    with pytest.raises(TransientError, match="disconnected"):
        target.send([command("k1")])
    assert len(ledger.effects) == 1
    [result] = target.send([command("k1")])  # the retry, same key
    assert result.status is ResultStatus.APPLIED and result.external_id == "L-000001"
    assert len(ledger.effects) == 1


def test_without_native_idempotency_a_blind_retry_makes_a_twin_but_marker_lookup_does_not(
) -> None:
    with LedgerEmulator(token="t", idempotency="none") as emulator:
        blind = LedgerTarget(emulator.url, "t")
        emulator.faults.script(["lost_ack"])
        with pytest.raises(TransientError):
            blind.send([command("k1")])
        blind.send([command("k1")])
        assert len(emulator.effects) == 2  # the twin DESIGN.md warns about

        careful = LedgerTarget(emulator.url, "t", idempotency=IdempotencyMode.MARKER_LOOKUP)
        emulator.faults.script(["lost_ack"])
        with pytest.raises(TransientError):
            careful.send([command("k2")])
        [result] = careful.send([command("k2", attempt=2)])  # the resend looks first
        assert result.status is ResultStatus.APPLIED
        assert [e["idempotency_key"] for e in emulator.effects].count("k2") == 1


def test_timeout_applies_late_and_the_retry_finds_it(ledger: LedgerEmulator) -> None:
    target = LedgerTarget(ledger.url, "t", timeout=0.1)
    ledger.faults.script(["timeout:0.3"])
    with pytest.raises(TransientError, match="timed out"):
        target.send([command("k1")])
    time.sleep(0.3)  # the backoff before the retry
    assert len(ledger.effects) == 1  # the slow write applied after the client gave up
    [result] = target.send([command("k1")])
    assert result.status is ResultStatus.APPLIED
    assert len(ledger.effects) == 1


def test_429_carries_retry_after_and_5xx_is_transient(ledger: LedgerEmulator) -> None:
    target = LedgerTarget(ledger.url, "t")
    ledger.faults.script(["429:7", "502"])
    with pytest.raises(TransientError) as throttled:
        target.send([command("k1")])
    assert throttled.value.retry_after == 7
    with pytest.raises(TransientError, match="HTTP 502"):
        target.send([command("k1")])
    assert ledger.effects == []


def test_oversized_batch_and_bad_token_are_permanent(ledger: LedgerEmulator) -> None:
    with pytest.raises(PermanentError, match="at most 100") as too_big:
        LedgerTarget(ledger.url, "t").send([command(f"k{i}") for i in range(101)])
    assert too_big.value.code == "TARGET_REJECTED"
    with pytest.raises(PermanentError) as denied:
        LedgerTarget(ledger.url, "wrong").send([command("k1")])
    assert denied.value.code == "TARGET_AUTH"


def test_a_rejected_record_does_not_fail_its_batch(ledger: LedgerEmulator) -> None:
    httpx.post(f"{ledger.url}/_emulator/reject", json={"field": "worker", "equals": "w-bad"})
    results = LedgerTarget(ledger.url, "t").send(
        [command("k1", worker="w-ok"), command("k2", worker="w-bad")])
    by_key = {r.idempotency_key: r for r in results}
    assert by_key["k1"].status is ResultStatus.APPLIED
    assert by_key["k2"].status is ResultStatus.REJECTED
    assert "w-bad" in (by_key["k2"].message or "")
    assert [e["idempotency_key"] for e in ledger.effects] == ["k1"]


def test_admin_routes_set_faults_and_never_get_them(ledger: LedgerEmulator) -> None:
    httpx.post(f"{ledger.url}/_emulator/faults", json={"script": ["5xx", "5xx"]})
    assert httpx.get(f"{ledger.url}/_emulator/effects").status_code == 200
    target = LedgerTarget(ledger.url, "t")
    for _ in range(2):
        with pytest.raises(TransientError):
            target.send([command("k1")])
    assert httpx.get(f"{ledger.url}/_emulator/faults").json() == {"injected": {"5xx": 2}}


def test_time_source_refuses_oversized_pages() -> None:
    with TimeSourceEmulator() as source:
        url = f"{source.url}/v1/time_entries"  # type: ignore[attr-defined]
        response = httpx.get(url, params={"per_page": 2001})
    assert response.status_code == 422
    assert "per_page" in response.json()["error"]["message"]


def test_a_held_call_is_answered_after_release_and_others_are_served_meanwhile(
        ledger: LedgerEmulator) -> None:
    ledger.faults.script([FaultRule(Fault.HOLD, delay=20, path_prefix="/v1/postings:batch")])
    target = LedgerTarget(ledger.url, "t")
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(target.send, [command("k1")])
        held = ledger.faults.wait_held(timeout=10)
        assert held is not None and json.loads(held.body)["items"][0]["idempotency_key"] == "k1"
        # While k1 waits, the emulator serves other calls and applies nothing of k1.
        assert httpx.get(f"{ledger.url}/v1/postings", headers={"Authorization": "Bearer t"}
                         ).status_code == 200
        assert ledger.effects == [] and not sent.done()
        httpx.post(f"{ledger.url}/_emulator/faults", json={"release": True})
        [result] = sent.result(timeout=10)
    assert result.status is ResultStatus.APPLIED
    assert [e["idempotency_key"] for e in ledger.effects] == ["k1"]
    assert ledger.faults.injected[Fault.HOLD] == 1
