"""An in-memory ERP for engine tests that need no HTTP, failing on cue.

By default it behaves as an ERP with no native idempotency does under the
hub's marker look-up: a first-attempt send (``attempt == 1``) always writes a
new record, and only a resend (``attempt > 1``) looks for a record written
under its key (the marker) before writing. So a command the hub sent twice as
new is held twice, a twin, as a real ERP would hold it: ``twins()`` names
them. ``IdempotencyMode.NATIVE`` makes it apply each key once instead, for
the few tests about a target that deduplicates by itself."""

from __future__ import annotations

from collections import Counter
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
    def __init__(self, name: str = "ledger", max_batch: int = 10,
                 idempotency: IdempotencyMode = IdempotencyMode.MARKER_LOOKUP) -> None:
        self.name = name
        self.max_batch = max_batch
        self.rate_limit = RateLimit(1000, 1, burst=1000)
        self.idempotency = idempotency
        self.applied: dict[str, str] = {}  # key → id of the first record written under it
        self.effects: list[OutboundCommand] = []  # every record written, twins included
        self.record_ids: list[str] = []  # the id of each record in ``effects``
        self.written: Counter[str] = Counter()  # records written per key
        self.reversed: set[str] = set()  # ids of postings a reversal cancelled
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
            key = command.idempotency_key
            looks_first = self.idempotency is IdempotencyMode.NATIVE or command.attempt > 1
            found = self.applied.get(key) if looks_first else None
            results.append(RecordResult(key, ResultStatus.APPLIED, found or self._write(command)))
        if step == "lost_ack":
            raise TransientError("connection dropped after the write")
        return results

    def _write(self, command: OutboundCommand) -> str:
        record_id = f"F-{len(self.effects) + 1}"
        if command.kind == "time_charge.reverse":
            undone = self._undone_by(command)
            if undone is not None:
                self.reversed.add(undone)
        self.effects.append(command)
        self.record_ids.append(record_id)
        self.written[command.idempotency_key] += 1
        self.applied.setdefault(command.idempotency_key, record_id)
        return record_id

    def _undone_by(self, reversal: OutboundCommand) -> str | None:
        """The live posting a reversal cancels: the one it names (by key or id),
        else the latest live posting of its charge."""
        charge = str(reversal.payload.get("charge"))
        named = reversal.payload.get("posting") or reversal.ref("time_charge", charge)
        live = [(record_id, c) for record_id, c in zip(self.record_ids, self.effects, strict=True)
                if c.kind == "time_charge.post" and str(c.payload.get("id")) == charge
                and record_id not in self.reversed]
        if named:
            return next((i for i, c in live if named in (i, c.idempotency_key)), None)
        return live[-1][0] if live else None

    def twins(self) -> dict[str, int]:
        """Keys written more than once, with how many records each made."""
        return {key: n for key, n in self.written.items() if n > 1}

    def live_charges(self) -> dict[str, list[str]]:
        """Time entry → the amounts of its labour postings still live here
        (posted and not reversed), oldest first: what the ERP would bill."""
        live: dict[str, list[str]] = {}
        for record_id, command in zip(self.record_ids, self.effects, strict=True):
            if command.kind == "time_charge.post" and record_id not in self.reversed:
                live.setdefault(str(command.payload["time_entry"]), []).append(
                    str(command.payload["amount"]))
        return live

    def kinds(self) -> list[str]:
        return [e.kind for e in self.effects]

    def payloads(self, kind: str) -> list[dict[str, Any]]:
        return [dict(e.payload) for e in self.effects if e.kind == kind]
