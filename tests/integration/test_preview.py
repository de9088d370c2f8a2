"""A configuration preview is safe to call: several at once all answer, and
the scenario suite it runs on throwaway hubs counts nothing in the live hub's
/metrics."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from billbridge.config_files import read_document
from billbridge.engine import config_store, tokens
from billbridge.engine.hub import Hub
from billbridge.engine.tokens import Role
from billbridge.web import create_app
from fakes import FakeTarget

SUITE = Path(__file__).parents[2] / "scenarios"
SCENARIOS = ("billing-run-period-end.yaml", "budget-cap-holds-whole-entry.yaml",
             "change-after-approval.yaml")


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for name in SCENARIOS:
        shutil.copy(SUITE / name, folder / name)
    shutil.copytree(SUITE / "config", folder / "config")
    return folder


@pytest.fixture
def proposal(engine: Engine) -> tuple[Hub, int]:
    """A hub under the suite's own firm configuration, and a proposal that
    raises the consultant rate (so the preview has postings to compare)."""
    hub = Hub(engine, {"ledger": FakeTarget()})
    firm = read_document(SUITE / "config")
    hub.activate_config(firm)
    raised = {**firm, "rate_cards": [
        {**card, "rates": {**card["rates"], "consultant": "155.00"}}
        for card in firm["rate_cards"]]}
    with engine.begin() as conn:
        version = config_store.propose(conn, raised, actor="paul", at=datetime.now(UTC))
    return hub, version


@pytest.fixture
def client(proposal: tuple[Hub, int], suite: Path) -> Iterator[TestClient]:
    with TestClient(create_app(proposal[0], scenarios=suite)) as test_client:
        yield test_client


def reader(hub: Hub) -> dict[str, str]:
    with hub.engine.begin() as conn:
        _, token = tokens.create(conn, name="fiona", role=Role.FINANCE,
                                 expires_in=timedelta(hours=1), actor="test",
                                 at=datetime.now(UTC))
    return {"Authorization": f"Bearer {token}"}


def counters(client: TestClient, headers: dict[str, str]) -> dict[tuple[str, Any], float]:
    """Every billbridge counter and histogram sample /metrics shows, by name and labels."""
    text = client.get("/metrics", headers=headers).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            if family.name.startswith("billbridge_") and family.type in ("counter", "histogram")
            for sample in family.samples if not sample.name.endswith("_created")}


def test_two_previews_at_once_both_answer_with_the_same_changes(
        proposal: tuple[Hub, int], client: TestClient) -> None:
    hub, version = proposal
    headers = reader(hub)
    start = threading.Barrier(2)
    answers: list[httpx.Response] = []

    def preview() -> None:
        start.wait()
        answers.append(client.get(f"/v1/config/versions/{version}/preview", headers=headers))

    threads = [threading.Thread(target=preview) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200, 200], [a.text[:300] for a in answers]
    first, second = (a.json() for a in answers)
    assert first == second
    assert first["scenarios"] == len(SCENARIOS)
    # 8 h of Alice's at her own 175.00 stay; Bob's 2 h at the consultant rate move.
    assert any(c["kind"] == "time charge" and "155.00" in c["after"] for c in first["changes"])


def test_a_preview_leaves_the_live_metrics_as_they_were(
        proposal: tuple[Hub, int], client: TestClient) -> None:
    hub, version = proposal
    headers = reader(hub)
    before = counters(client, headers)
    answer = client.get(f"/v1/config/versions/{version}/preview", headers=headers)
    assert answer.status_code == 200 and answer.json()["changes"]
    assert counters(client, headers) == before

    # The live hub still counts: what it ingests shows.
    hub.ingest([{"type": "billing.run", "id": "run-1", "at": "2026-04-01T06:00:00Z",
                 "data": {"period_end": "2026-03-31"}}], source="billbridge")
    after = counters(client, headers)
    received = ("billbridge_events_received_total",
                (("source", "billbridge"), ("type", "billing.run")))
    assert after[received] == before.get(received, 0) + 1
