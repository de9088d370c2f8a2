"""The exception queue tells the truth at the command line: whole messages,
and a retry or replay that says how the work went once a worker ran it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from billbridge.cli.app import app
from billbridge.emulation.recording import RecordingTarget
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.store.db import make_engine
from billbridge.store.tables import exceptions
from conftest import CONFIG, project_event, time_entry


class Queue:
    """A hub on a file store with Carol's hours open as NO_RATE, and the
    operator's token."""

    def __init__(self, root: Path) -> None:
        self.url = f"sqlite:///{root / 'hub.db'}"
        self.erp = RecordingTarget("ledger")
        self.hub = Hub(make_engine(self.url), {"ledger": self.erp})
        self.hub.activate_config(CONFIG)
        self.hub.ingest([project_event(), time_entry("te-9", worker="w-carol", hours="2")],
                        source="harvest")
        self.hub.run_until_idle()
        with self.hub.engine.begin() as conn:
            self.token = tokens.create(conn, name="olga", role=tokens.Role.OPERATOR,
                                       expires_in=timedelta(hours=1), actor="test",
                                       at=datetime.now(UTC))[1]
            [self.exc] = conn.execute(exceptions.select()).all()

    def cli(self, *args: str, columns: int = 200) -> Any:
        return CliRunner().invoke(app, [*args, "--database-url", self.url], catch_exceptions=False,
                                  env={"BILLBRIDGE_TOKEN": self.token, "COLUMNS": str(columns)})


@pytest.fixture
def queue(tmp_path: Path) -> Queue:
    return Queue(tmp_path)


@pytest.fixture
def worker(queue: Queue) -> Iterator[None]:
    """A worker beside the command, as `billbridge serve` would be."""
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            queue.hub.run_until_idle()
            stop.wait(0.05)

    thread = threading.Thread(target=work)
    thread.start()
    yield
    stop.set()
    thread.join()


def message_column(output: str) -> str:
    """The message cells of a drawn table, their wrapped lines joined again."""
    cells = [line.split("│")[5].strip() for line in output.splitlines()
             if line.count("│") == 7]
    return " ".join(c for c in cells if c)


def test_the_list_shows_the_whole_message_in_a_narrow_terminal(queue: Queue) -> None:
    assert len(queue.exc.message) > 90  # the fix is at its end
    listed = queue.cli("exceptions", "list", columns=80)
    assert listed.exit_code == 0, listed.output
    assert " ".join(queue.exc.message.split()) in message_column(listed.stdout)


def test_a_retry_of_an_unfixed_exception_says_it_failed_again_and_which_opened(
        queue: Queue, worker: None) -> None:
    said = queue.cli("exceptions", "retry", str(queue.exc.id), "--wait", "30")
    assert said.exit_code == 0, said.output
    with queue.hub.engine.connect() as conn:
        newest = conn.execute(exceptions.select().order_by(exceptions.c.id.desc())).first()
    assert newest is not None and newest.id != queue.exc.id
    assert f"exception {queue.exc.id}: retried; still NO_RATE: exception {newest.id} opened" \
        in said.stdout


def test_a_replay_after_the_fix_says_it_is_done(queue: Queue, worker: None) -> None:
    card = {**CONFIG["rate_cards"][0], "rates": {**CONFIG["rate_cards"][0]["rates"],
                                                 "designer": "120.00"}}
    queue.hub.activate_config({**CONFIG, "rate_cards": [card]})
    said = queue.cli("exceptions", "replay", str(queue.exc.id), "--wait", "30")
    assert said.exit_code == 0, said.output
    assert f"exception {queue.exc.id}: replayed; done" in said.stdout
    assert [e["payload"]["amount"] for e in queue.erp.effects
            if e["kind"] == "time_charge.post"] == ["240.00"]


def test_without_a_worker_a_retry_says_the_work_is_queued(queue: Queue) -> None:
    said = queue.cli("exceptions", "retry", str(queue.exc.id), "--wait", "0")
    assert said.exit_code == 0, said.output
    assert "retried; queued: its event waits for a worker" in said.stdout
