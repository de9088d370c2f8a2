"""With tracing on, a target call runs in a span and the vendor receives its
W3C traceparent."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator
from billbridge.emulation.server import Request
from billbridge.engine import tracing
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub
from billbridge.store.db import make_engine
from conftest import CONFIG, project_event


def test_outbound_calls_carry_the_traceparent_of_their_span() -> None:
    exporter = InMemorySpanExporter()
    provider = tracing.enable(exporter)
    seen: list[str] = []
    with LedgerEmulator(token="t") as erp:
        original = erp.dispatch  # type: ignore[attr-defined]

        def spy(request: Request, *, drop: object) -> object:
            seen.append(request.headers.get("traceparent", ""))
            return original(request, drop=drop)  # type: ignore[arg-type]

        erp.dispatch = spy  # type: ignore[attr-defined,method-assign]
        hub = Hub(make_engine("sqlite://"), {"ledger": LedgerTarget(erp.url, "t")},  # type: ignore[attr-defined]
                  clock=ManualClock())
        hub.activate_config(CONFIG)
        hub.ingest([project_event()], source="psa")
        hub.run_until_idle()
    provider.force_flush()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    dispatch = spans["billbridge.dispatch"]
    trace_id = format(dispatch.context.trace_id, "032x")
    assert "billbridge.process" in spans
    assert any(header.split("-")[1] == trace_id for header in seen if header)
    provider.shutdown()  # later tests record nothing
