"""Logs go to stderr as it is when a line is written."""

from __future__ import annotations

import io
import sys

import pytest
import structlog

from billbridge.logs import configure_logging


def test_a_closed_stand_in_for_stderr_does_not_break_later_log_lines(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A CLI harness stands in for stderr while a command sets logging up, then
    closes its stand-in: the hub's next log line goes to stderr, not to a
    closed file (which raised in whatever logged next)."""
    stand_in = io.StringIO()
    with monkeypatch.context() as patched:
        patched.setattr(sys, "stderr", stand_in)
        configure_logging()
        structlog.get_logger("t").warning("while standing in")
    stand_in.close()
    structlog.get_logger("t").warning("after", target="ledger")
    assert '"event": "after"' in capsys.readouterr().err
    structlog.reset_defaults()
