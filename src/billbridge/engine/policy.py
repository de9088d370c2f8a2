"""The one retry policy, token bucket and circuit breaker of the dispatcher."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from billbridge.connectors.ratelimit import TokenBucket

__all__ = ["CircuitBreaker", "CircuitState", "RetryPolicy", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, never sooner than Retry-After."""

    base_seconds: float = 1.0
    cap_seconds: float = 300.0
    max_attempts: int = 15

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** max(0, attempt - 1)))
        jittered = rng.uniform(ceiling / 2, ceiling)
        return max(jittered, retry_after or 0.0)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class CircuitBreaker:
    """Stops calls to a target that keeps failing; lets one trial call through
    after ``cooldown_seconds``; closes again on the first success.

    A failed trial call opens the circuit again for the same cooldown, not a
    growing one: a trial is a single call, so probing every cooldown costs
    the target nothing, and once it is back (an ERP after its maintenance
    window, at month-end) the hub resumes within one cooldown rather than
    after minutes (docs/decisions.md, "A circuit's cooldown does not grow")."""

    threshold: int = 5
    cooldown_seconds: float = 30.0
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    open_until_ms: int = 0

    def allows(self, now_ms: int) -> bool:
        if self.state is CircuitState.OPEN and now_ms >= self.open_until_ms:
            self.state = CircuitState.HALF_OPEN
        return self.state is not CircuitState.OPEN

    def success(self) -> None:
        self.state = CircuitState.CLOSED
        self.failures = 0

    def failure(self, now_ms: int) -> None:
        self.failures += 1
        if self.state is CircuitState.HALF_OPEN or self.failures >= self.threshold:
            self.state = CircuitState.OPEN
            self.open_until_ms = now_ms + int(self.cooldown_seconds * 1000)
