"""Freezing start-up's heap: the long-running commands call it once they are built."""

import gc
import importlib
from typing import Any

import pytest
from typer.testing import CliRunner

from billbridge.heap import BATCH_THRESHOLDS, freeze_startup


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_startup_objects_leave_the_collector_and_later_garbage_is_still_collected() -> None:
    kept = _Cycle()
    try:
        freeze_startup()
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # frozen: no pass walks it
        _Cycle()  # garbage made after start-up, a cycle only the collector can free
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())



def test_a_worker_runs_with_the_batch_thresholds_and_the_rest_keep_the_default(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`billbridge worker` sets ``BATCH_THRESHOLDS`` before its loop; a process
    that has not (a test, `billbridge serve`) keeps the interpreter's default."""
    cli = importlib.import_module("billbridge.cli.app")  # the package's `app` is the Typer
    runner = importlib.import_module("billbridge.engine.runner")

    seen: list[tuple[int, ...]] = []
    monkeypatch.setattr(cli, "freeze_startup", lambda: None)  # no freeze in a test run
    monkeypatch.setattr(runner, "run", lambda *_, **__: seen.append(gc.get_threshold()))
    before = gc.get_threshold()
    assert before[0] < BATCH_THRESHOLDS[0]
    try:
        result = CliRunner().invoke(cli.app, [
            "worker", "--database-url", f"sqlite:///{tmp_path / 'hub.db'}", "--idle-exit", "0"])
    finally:
        gc.set_threshold(*before)
    assert result.exit_code == 0, result.output
    assert seen == [BATCH_THRESHOLDS]
