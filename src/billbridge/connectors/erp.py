"""What the ERP targets share: their client and the connection's settings,
a batch of at least one, the client's rate limit, marker (or reference)
look-up as their idempotency, dispatch lanes, today's date for what an
invoice is dated (a clock tests can set), and the lock of the counters a
dispatcher's threads share; and the plan of a command by its kind."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Generic, TypeVar

from billbridge.connectors.base import IdempotencyMode, Limited, OutboundCommand
from billbridge.connectors.fields import MappingError

C = TypeVar("C", bound=Limited)
S = TypeVar("S")
P = TypeVar("P")


class ErpTarget(Generic[C, S]):
    def __init__(self, client: C, settings: S, *, name: str, max_batch: int,
                 today: Callable[[], date] | None, concurrency: int) -> None:
        self.name = name
        self.client = client
        self.settings = settings
        self.max_batch = max(1, max_batch)
        self.rate_limit = client.rate_limit
        self.idempotency = IdempotencyMode.MARKER_LOOKUP
        self.concurrency = max(1, concurrency)  # dispatch lanes: calls in flight at once
        self.today = today or (lambda: datetime.now(UTC).date())
        self._counting = threading.Lock()  # for the counters: never held during a call


def plan_of(plans: Mapping[str, Callable[[OutboundCommand], P]], command: OutboundCommand, *,
            vendor: str) -> P:
    """What the plan for its kind makes of ``command``; ``MappingError``
    UNKNOWN_COMMAND when the target has none."""
    plan = plans.get(command.kind)
    if plan is None:
        raise MappingError(f"the {vendor} target does not handle {command.kind}",
                           code="UNKNOWN_COMMAND")
    return plan(command)
