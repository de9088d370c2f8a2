"""A target that writes each kind of command with calls of its own (a party,
then a project, then costs, then invoices), and what it answers when a
later kind fails once an earlier kind's write may have applied."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from billbridge.connectors.base import DeliveryError, OutboundCommand, RecordResult, ResultStatus

Handler = Callable[[Sequence[OutboundCommand]], list[RecordResult]]


def retry_all(commands: Sequence[OutboundCommand], exc: DeliveryError) -> list[RecordResult]:
    return [RecordResult.of(c, ResultStatus.RETRY, code=exc.code, message=str(exc),
                            retry_after=exc.retry_after) for c in commands]


def send_by_kind(batch: Sequence[OutboundCommand], handlers: Mapping[str, Handler], *,
                 writes: Callable[[], int], vendor: str,
                 order: Sequence[str] = ()) -> list[RecordResult]:
    """Each kind through its handler (in ``order``, then as they come).

    ``writes`` counts the write calls sent so far. When a kind fails after
    an earlier kind's write may have applied, its commands (and the rest)
    are answered RETRY instead of the whole call raising: the dispatcher
    would resend the applied commands too, and after a refused batch (split
    in halves) or a spent day (deferred) it resends them as first attempts,
    which skip the look-up of what an earlier attempt wrote."""
    groups: dict[str, list[OutboundCommand]] = {}
    for command in batch:
        groups.setdefault(command.kind, []).append(command)
    ranked = sorted(groups, key=lambda k: order.index(k) if k in order else len(order))
    results: list[RecordResult] = []
    before = writes()
    failure: DeliveryError | None = None
    for kind in ranked:
        commands = groups[kind]
        handler = handlers.get(kind)
        if handler is None:
            results += [RecordResult.of(c, ResultStatus.REJECTED, code="UNKNOWN_COMMAND",
                                        message=f"the {vendor} target does not handle {kind}")
                        for c in commands]
        elif failure is not None:
            results += retry_all(commands, failure)
        else:
            earlier_writes = writes() > before
            try:
                results += handler(commands)
            except DeliveryError as exc:
                if not earlier_writes:
                    raise
                failure = exc
                results += retry_all(commands, exc)
    return results
