"""An in-memory target that behaves as a ledger: the emulated ERP, CRM and PSA
of the scenario harness and of the engine's tests.

It applies each command once per idempotency key (a resend with a known key
is a no-op that answers the first result, as a target with native
idempotency does) and keeps what an ERP keeps: labour postings that a
reversal cancels, by the target's id of the posting the hub names in
``refs``; invoices as created. A reversal of a posting that is not live is
rejected, as an ERP rejects voiding what is already void. What it holds is
the truth the tests compare the hub's records with (``live_postings``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billbridge.connectors.base import (
    IdempotencyMode,
    LivePosting,
    OutboundCommand,
    RateLimit,
    RecordResult,
    ResultStatus,
)


@dataclass
class _Posting:
    external_id: str
    payload: dict[str, Any]
    live: bool = True


class RecordingTarget:
    def __init__(self, name: str, *, max_batch: int = 100, prefix: str | None = None) -> None:
        self.name = name
        self.max_batch = max_batch
        self.rate_limit = RateLimit(10_000, 1, burst=10_000)
        self.idempotency = IdempotencyMode.NATIVE
        self.prefix = prefix or name.upper()[:3]
        self.effects: list[dict[str, Any]] = []
        self.postings: dict[str, _Posting] = {}  # by the target's id, in order of creation
        self._results: dict[str, RecordResult] = {}

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        results = []
        for command in batch:
            known = self._results.get(command.idempotency_key)
            if known is None:
                known = self._apply(command)
                if known.status is ResultStatus.APPLIED:
                    self._results[command.idempotency_key] = known
            results.append(known)
        return results

    def _apply(self, command: OutboundCommand) -> RecordResult:
        key = command.idempotency_key
        payload = dict(command.payload)
        if command.kind == "time_charge.reverse":
            named = command.ref("time_charge", payload.get("charge"))
            posting = self.postings.get(named or "")
            if posting is None or not posting.live:
                return RecordResult(key, ResultStatus.REJECTED, code="NOT_LIVE",
                                    message=f"no live posting {named} to reverse for charge "
                                            f"{payload.get('charge')}")
            posting.live = False
        external_id = f"{self.prefix}-{len(self.effects) + 1:05d}"
        self.effects.append({"kind": command.kind, "id": external_id, "key": key,
                             "payload": payload})
        if command.kind == "time_charge.post":
            self.postings[external_id] = _Posting(external_id, payload)
        return RecordResult(key, ResultStatus.APPLIED, external_id)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e["payload"] for e in self.effects if e["kind"] == kind]

    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        wanted = set(charge_ids) if charge_ids is not None else None
        return [LivePosting(charge=str(p.payload["id"]), external_id=p.external_id,
                            hours=Decimal(str(p.payload["hours"])),
                            amount=Decimal(str(p.payload["amount"])),
                            currency=str(p.payload["currency"]),
                            project=p.payload.get("project"))
                for p in self.postings.values()
                if p.live and (wanted is None or p.payload["id"] in wanted)]

    def void(self, external_id: str) -> None:
        """Cancel a posting inside the ERP, behind the hub's back (as a user
        of the ERP may): for tests of reconciliation."""
        self.postings[external_id].live = False
