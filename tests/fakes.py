"""An in-memory target for engine tests that need no HTTP: it deduplicates on
the idempotency key like a target with a native mechanism, and fails on cue."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from billbridge.connectors.base import (
    IdempotencyMode,
    OutboundCommand,
    PermanentError,
    RateLimit,
    RecordResult,
    ResultStatus,
    TransientError,
)


class FakeTarget:
    def __init__(self, name: str = "ledger", max_batch: int = 10) -> None:
        self.name = name
        self.max_batch = max_batch
        self.rate_limit = RateLimit(1000, 1, burst=1000)
        self.idempotency = IdempotencyMode.NATIVE
        self.applied: dict[str, str] = {}
        self.effects: list[OutboundCommand] = []
        self.calls: list[list[str]] = []
        self.attempts_seen: dict[str, list[int]] = {}
        self.script: list[str] = []  # "ok", "transient", "429:N", "lost_ack", "permanent"
        self.reject: Callable[[OutboundCommand], str | None] = lambda c: None

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        self.calls.append([c.idempotency_key for c in batch])
        for command in batch:
            self.attempts_seen.setdefault(command.idempotency_key, []).append(command.attempt)
        step = self.script.pop(0) if self.script else "ok"
        if step == "transient":
            raise TransientError("503 from fake")
        if step.startswith("429"):
            raise TransientError("429 from fake", retry_after=float(step.split(":")[1]))
        if step.startswith("quota"):
            raise TransientError("daily quota spent", code="QUOTA_EXHAUSTED",
                                 retry_after=float(step.split(":")[1]))
        if step == "permanent":
            raise PermanentError("400 from fake", code="TARGET_REJECTED")
        results = []
        for command in batch:
            problem = self.reject(command)
            if problem:
                if len(batch) > 1 and step == "whole_batch_rejects":
                    raise PermanentError(problem, code="TARGET_REJECTED")
                results.append(RecordResult(command.idempotency_key, ResultStatus.REJECTED,
                                            code="VALIDATION", message=problem))
                continue
            if command.idempotency_key not in self.applied:
                self.applied[command.idempotency_key] = f"F-{len(self.applied) + 1}"
                self.effects.append(command)
            results.append(RecordResult(command.idempotency_key, ResultStatus.APPLIED,
                                        self.applied[command.idempotency_key]))
        if step == "lost_ack":
            raise TransientError("connection dropped after the write")
        return results

    def kinds(self) -> list[str]:
        return [e.kind for e in self.effects]

    def payloads(self, kind: str) -> list[dict[str, Any]]:
        return [dict(e.payload) for e in self.effects if e.kind == kind]
