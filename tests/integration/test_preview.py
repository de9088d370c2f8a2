"""A configuration preview is safe to call: several at once all answer, and
the scenario suite it runs on throwaway hubs counts nothing in the live hub's
/metrics. It runs once per proposal and is kept, per store, until what it
measures changes: the active version, either document, a scenario file."""

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
from sqlalchemy import Engine, update

from billbridge.config_files import read_document
from billbridge.domain.idempotency import canonical_json
from billbridge.engine import config_store, tokens
from billbridge.engine.hub import Hub
from billbridge.engine.tokens import Role
from billbridge.scenarios import diff as scenario_diff
from billbridge.scenarios.diff import PostingChange
from billbridge.services import config_versions
from billbridge.store.db import make_engine, migrate
from billbridge.store.tables import config_versions as config_versions_table
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


def consultant(document: dict[str, Any]) -> str:
    return str(document["rate_cards"][0]["rates"]["consultant"]) if document else "—"


def with_consultant(firm: dict[str, Any], rate: str) -> dict[str, Any]:
    return {**firm, "rate_cards": [{**card, "rates": {**card["rates"], "consultant": rate}}
                                   for card in firm["rate_cards"]]}


@pytest.fixture
def suite_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stands in for the scenario suite (run for real by the console's end-to-end
    test): each run is counted, and its one change says what it was given."""
    runs: list[str] = []

    def run(old: dict[str, Any], new: dict[str, Any], scenarios: list[Path],
            progress: Any = None) -> list[PostingChange]:
        read = "|".join(p.read_text() for p in scenarios)
        runs.append(read)
        return [PostingChange(read, "time charge", "consultant", consultant(old),
                              consultant(new))]

    monkeypatch.setattr(scenario_diff, "diff", run)
    return runs


def test_a_kept_preview_is_made_again_when_what_it_measures_changes(
        engine: Engine, tmp_path: Path, suite_runs: list[str]) -> None:
    scenario = tmp_path / "one.yaml"
    scenario.write_text("name: one\n")
    firm = read_document(SUITE / "config")
    with engine.begin() as conn:
        config_store.activate(conn, firm, actor="test", at=datetime.now(UTC))
        version = config_store.propose(conn, with_consultant(firm, "155.00"), actor="paul",
                                       at=datetime.now(UTC))

    def moved() -> tuple[int, str, str]:
        seen = config_versions.preview(engine, version, [scenario])
        [change] = seen.changes
        return seen.against, change["before"], change["after"]

    assert moved() == moved() == (1, "150.00", "155.00") and len(suite_runs) == 1
    # Another version becomes active: the proposal is measured against it.
    with engine.begin() as conn:
        other = config_store.propose(conn, with_consultant(firm, "140.00"), actor="paul",
                                     at=datetime.now(UTC))
        config_store.approve(conn, other, actor="fiona", at=datetime.now(UTC))
    assert moved() == (other, "140.00", "155.00") and len(suite_runs) == 2
    # An edited scenario file is read again.
    scenario.write_text("name: one, edited\n")
    assert moved() == moved() and suite_runs[-1] == "name: one, edited\n"
    assert len(suite_runs) == 3
    # A proposal whose document changed under its number is previewed anew.
    changed = with_consultant(firm, "160.00")
    with engine.begin() as conn:
        conn.execute(update(config_versions_table)
                     .where(config_versions_table.c.version == version)
                     .values(document=canonical_json(changed)))
    assert moved() == (other, "140.00", "160.00") and len(suite_runs) == 4


def test_stores_whose_version_numbers_coincide_keep_their_own_previews(
        tmp_path: Path, suite_runs: list[str]) -> None:
    firm = read_document(SUITE / "config")
    previews = []
    for name, rate in (("one", "155.00"), ("two", "165.00")):
        engine = make_engine(f"sqlite:///{tmp_path / name}.db")
        migrate(engine)
        with engine.begin() as conn:
            config_store.activate(conn, firm, actor="test", at=datetime.now(UTC))
            assert config_store.propose(conn, with_consultant(firm, rate), actor="paul",
                                        at=datetime.now(UTC)) == 2
        previews.append(config_versions.preview(engine, 2, []).changes[0]["after"])
        engine.dispose()
    assert previews == ["155.00", "165.00"] and len(suite_runs) == 2


def test_an_approval_from_a_preview_that_is_out_of_date_is_refused(engine: Engine) -> None:
    firm = read_document(SUITE / "config")
    with engine.begin() as conn:
        config_store.activate(conn, firm, actor="test", at=datetime.now(UTC))
        version = config_store.propose(conn, with_consultant(firm, "155.00"), actor="paul",
                                       at=datetime.now(UTC))
        other = config_store.propose(conn, with_consultant(firm, "140.00"), actor="paul",
                                     at=datetime.now(UTC))
    read = config_versions.review(engine, version, [])
    assert read.measured is not None
    config_versions.decide(engine, other, "approve", actor="fiona", at=datetime.now(UTC))
    with pytest.raises(config_store.ApprovalRefused, match="out of date"):
        config_versions.decide(engine, version, "approve", actor="fiona", at=datetime.now(UTC),
                               seen=config_versions.Seen(read.measured, []))
    again = config_versions.review(engine, version, [])
    assert again.measured is not None and again.measured != read.measured
    assert config_versions.decide(engine, version, "approve", actor="fiona",
                                  at=datetime.now(UTC),
                                  seen=config_versions.Seen(again.measured, [])) == "active"
