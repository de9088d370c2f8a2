"""OpenTelemetry tracing, off unless BILLBRIDGE_OTEL is set: spans for worker
batches and target calls; their context travels to vendors as `traceparent`
(see connectors/tracing.py). Exporting is left to the standard OTEL_*
settings; `console` prints spans to stderr."""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

tracer = trace.get_tracer("billbridge")


def enable(exporter: SpanExporter | None = None) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter or ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def enable_from_env() -> None:
    if os.environ.get("BILLBRIDGE_OTEL"):
        enable()
