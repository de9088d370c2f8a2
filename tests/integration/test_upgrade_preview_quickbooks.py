"""Moving a QuickBooks connection to another minorversion is a governed
change: proposed, previewed by reading the suite's invoice states through the
QuickBooks emulator in each version's shape with the real QuickBooks source,
and approved by a second identity, on the same console review page as any
change. In the emulator's minorversion 76 shape a voided invoice keeps its
private note as written (its state is in TxnStatus), so the connector would
read it as issued: the preview shows that invoice's status changing."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from billbridge.config_files import read_document
from billbridge.connectors.quickbooks.client import QuickBooksClient
from billbridge.connectors.quickbooks.source import QuickBooksSource
from billbridge.domain.config import load_configuration
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.errors import Conflict
from billbridge.services import config_versions
from billbridge.web import create_app
from fakes import FakeTarget

SUITE = Path(__file__).parents[2] / "scenarios"
VOIDED = SUITE / "invoice-void-flows-back.yaml"
NOW = datetime(2026, 4, 2, tzinfo=UTC)
# The preview runs the suite on throwaway in-memory stores whatever the hub's store is.
on_sqlite = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
VOID_READ_AS_ISSUED = ("An invoice voided in the ERP flows back to the CRM", "invoice",
                       "inv_GLX-001_2026-03-31", "1400.00 + tax 0.00 = 1400.00 USD, void",
                       "1400.00 + tax 0.00 = 1400.00 USD, issued")


def firm(version: str) -> dict[str, Any]:
    return {**read_document(SUITE / "config"), "api_versions": {"quickbooks": version}}


@pytest.fixture
def hub(engine: Engine) -> Hub:
    hub = Hub(engine, {"ledger": FakeTarget()})
    hub.activate_config(firm("75"))
    return hub


def speaks(hub: Hub) -> tuple[int, str]:
    """The minorversion a QuickBooks source configured from the active
    configuration sends, and its contract's version."""
    source = QuickBooksSource(QuickBooksClient("https://quickbooks.api.intuit.com", "1"))
    with hub.engine.connect() as conn:
        source.configure(load_configuration(config_versions.document(
            conn, config_versions.active_version(conn))))
    return source.client.minor_version, source.contracts.contract.api_version


@on_sqlite
def test_the_preview_of_minorversion_76_shows_the_voided_invoice_read_as_issued(
        hub: Hub) -> None:
    version = config_versions.propose(hub.engine, firm("76"), actor="paul", at=NOW)
    preview = config_versions.preview(hub.engine, version, [VOIDED])
    # Only the voided invoice's status moves (a paid one reads the same in both
    # shapes: tests/integration/connectors/test_quickbooks_versions.py).
    assert [(c["scenario"], c["kind"], c["subject"], c["before"], c["after"])
            for c in preview.changes] == [VOID_READ_AS_ISSUED]


@on_sqlite
def test_minorversion_76_applies_only_when_a_second_person_approves(hub: Hub) -> None:
    version = config_versions.propose(hub.engine, firm("76"), actor="paul", at=NOW)
    with pytest.raises(Conflict, match="paul proposed version"):
        config_versions.decide(hub.engine, version, "approve", actor="paul", at=NOW)
    assert speaks(hub) == (75, "minorversion=75")

    assert config_versions.decide(hub.engine, version, "approve", actor="fiona",
                                  at=NOW) == "active"
    assert speaks(hub) == (76, "minorversion=76")


@on_sqlite
def test_the_console_review_page_shows_the_change_and_refuses_its_author(
        hub: Hub, tmp_path: Path) -> None:
    suite = tmp_path / "scenarios"
    suite.mkdir()
    shutil.copy(VOIDED, suite)
    shutil.copytree(SUITE / "config", suite / "config")
    app = create_app(hub, scenarios=suite)
    version = config_versions.propose(hub.engine, firm("76"), actor="paul", at=NOW)

    def console(name: str) -> TestClient:
        client = TestClient(app)
        with hub.engine.begin() as conn:
            secret = tokens.create(conn, name=name, role=tokens.Role.FINANCE,
                                   expires_in=timedelta(hours=1), actor="test",
                                   at=datetime.now(UTC))[1]
        client.post("/console/login", data={"token": secret})
        return client

    paul = console("paul")
    review = paul.get(f"/console/config/{version}").text
    rows = review.split('class="preview"', 1)[1].split("</table>", 1)[0]
    assert "<td>" + "</td><td>".join(VOID_READ_AS_ISSUED) + "</td>" in rows
    assert "You proposed it: a second person approves it." in review
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', review)
    assert csrf is not None
    refused = paul.post(f"/console/config/{version}/approve", data={"csrf": csrf.group(1)})
    assert "not approved: paul proposed version" in refused.text
    assert speaks(hub) == (75, "minorversion=75")

    fiona = console("fiona")
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', fiona.get("/console/config").text)
    assert token is not None
    approved = fiona.post(f"/console/config/{version}/approve", data={"csrf": token.group(1)})
    assert f"version {version} is active" in approved.text
    assert speaks(hub) == (76, "minorversion=76")


@on_sqlite
def test_a_version_that_is_not_a_minorversion_is_said_in_one_line(hub: Hub) -> None:
    version = config_versions.propose(hub.engine, firm("latest"), actor="paul", at=NOW)
    review = config_versions.review(hub.engine, version, [VOIDED])
    assert review.preview is None
    assert review.preview_error == ("quickbooks: api_versions names a minorversion by its "
                                    "number (such as 75), not 'latest'")
