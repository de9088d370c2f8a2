"""An in-memory target that applies every command once per idempotency key
and remembers it: the emulated ERP, CRM and PSA of the scenario harness."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from billbridge.connectors.base import (
    IdempotencyMode,
    OutboundCommand,
    RateLimit,
    RecordResult,
    ResultStatus,
)


class RecordingTarget:
    def __init__(self, name: str, *, max_batch: int = 100, prefix: str | None = None) -> None:
        self.name = name
        self.max_batch = max_batch
        self.rate_limit = RateLimit(10_000, 1, burst=10_000)
        self.idempotency = IdempotencyMode.NATIVE
        self.prefix = prefix or name.upper()[:3]
        self.effects: list[dict[str, Any]] = []
        self._ids: dict[str, str] = {}

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        results = []
        for command in batch:
            if command.idempotency_key not in self._ids:
                self._ids[command.idempotency_key] = f"{self.prefix}-{len(self._ids) + 1:05d}"
                self.effects.append({"kind": command.kind, "id": self._ids[
                    command.idempotency_key], "key": command.idempotency_key,
                    "payload": dict(command.payload)})
            results.append(RecordResult(command.idempotency_key, ResultStatus.APPLIED,
                                        self._ids[command.idempotency_key]))
        return results

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e["payload"] for e in self.effects if e["kind"] == kind]
