"""Trace context for outbound calls: when OpenTelemetry tracing is enabled,
every vendor request carries the W3C `traceparent` of the work that caused
it. Connectors add `inject` as an httpx request hook."""

from __future__ import annotations

import httpx
from opentelemetry import propagate


def inject(request: httpx.Request) -> None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    for name, value in carrier.items():
        request.headers.setdefault(name, value)


HOOKS = {"request": [inject]}
