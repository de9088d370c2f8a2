"""SQLite checkpoint cadence per process role: workers checkpoint rarely (their
batches commit often), the webhook intake in small steps (each acknowledgement
waits for its commit, and a commit that checkpoints pays for it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from billbridge.store.db import BATCH_CHECKPOINT_PAGES, INTAKE_CHECKPOINT_PAGES, make_engine


def _pages(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def test_an_engine_checkpoints_at_the_pages_it_was_given(tmp_path: Path) -> None:
    assert INTAKE_CHECKPOINT_PAGES < BATCH_CHECKPOINT_PAGES
    assert _pages(make_engine(f"sqlite:///{tmp_path / 'a.db'}")) == BATCH_CHECKPOINT_PAGES
    assert _pages(make_engine(f"sqlite:///{tmp_path / 'b.db'}",
                              checkpoint_pages=INTAKE_CHECKPOINT_PAGES)) == 1000


def test_serve_runs_its_store_with_intake_checkpoints(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`billbridge serve` acknowledges webhooks: its engine must not carry the
    workers' 32 MiB checkpoints (that doubled p99 ack latency in bench ingest)."""
    from billbridge import web as server
    from billbridge.cli.app import app

    served: dict[str, Any] = {}
    monkeypatch.setattr(server, "serve_hub", lambda hub, **_: served.setdefault("hub", hub))
    result = CliRunner().invoke(app, ["serve", "--database-url",
                                      f"sqlite:///{tmp_path / 'hub.db'}", "--no-engine"],
                                env={"BILLBRIDGE_WEBHOOK_SECRET": "checkpoints-secret"})
    assert result.exit_code == 0, result.output
    assert _pages(served["hub"].engine) == INTAKE_CHECKPOINT_PAGES
