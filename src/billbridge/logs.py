"""JSON logs through structlog; every line carries what the caller bound
(correlation id, event id, target)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    from billbridge.engine.tracing import enable_from_env

    enable_from_env()
    stream = stream or sys.stderr
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
