"""One call to a target: the batch goes out, and the results (or the failure
of the call as a whole) come back, with its span and its timing."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from billbridge.connectors.base import (
    DeliveryError,
    OutboundCommand,
    RecordResult,
    ResultStatus,
    Target,
)
from billbridge.domain.reasons import ReasonCode
from billbridge.engine import metrics
from billbridge.engine.tracing import tracer


def call(target: Target, name: str, batch_id: str, commands: Sequence[OutboundCommand]
         ) -> tuple[dict[str, RecordResult], DeliveryError | None]:
    """One call to the target: the results, or the failure of the call as
    a whole."""
    t0 = time.perf_counter()
    results: dict[str, RecordResult] = {}
    failure: DeliveryError | None = None
    with tracer.start_as_current_span("billbridge.dispatch", attributes={
            "billbridge.target": name, "billbridge.batch_size": len(commands),
            "billbridge.batch_id": batch_id}):
        try:
            results = send(target, commands)
        except DeliveryError as exc:
            failure = exc
    metrics.DELIVERY_SECONDS.labels(name).observe(time.perf_counter() - t0)
    return results, failure


def send(target: Target, commands: Sequence[OutboundCommand]) -> dict[str, RecordResult]:
    """Send a batch; when the target refuses a whole batch, split it to find
    the records it refuses, so one bad record cannot hold up the rest."""
    try:
        return {r.idempotency_key: r for r in target.send(commands)}
    except DeliveryError as exc:
        if exc.transient or exc.code == ReasonCode.TARGET_AUTH.value:
            raise
        if len(commands) == 1:
            return {commands[0].idempotency_key: RecordResult(
                commands[0].idempotency_key, ResultStatus.REJECTED, code=exc.code,
                message=str(exc))}
        # The halves go again: a target that wrote part of the refused batch
        # must look for its markers before writing them a second time.
        again = [dataclasses.replace(c, attempt=c.attempt + 1) for c in commands]
        middle = len(again) // 2
        first = send(target, again[:middle])
        return first | send(target, again[middle:])
