"""JSON logs through structlog; every line carries what the caller bound
(correlation id, event id, target)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog


class _CurrentStderr:
    """``sys.stderr`` as it is when a line is written, not when logging was set
    up: a caller that stands in for stderr for a while (a CLI harness, a test
    runner) and closes its stand-in leaves the logs on the real one again,
    instead of a hub whose every later log line raises."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    from billbridge.engine.tracing import enable_from_env

    enable_from_env()
    stream = stream or cast(TextIO, _CurrentStderr())
    logging.basicConfig(stream=stream, level=level, format="%(message)s")
    # httpx says every request at INFO: a line per vendor call is noise next to
    # the hub's own lines and the per-target metrics, and costs at month-end.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
    )
