"""Rate limits and API quotas as connectors meet them: a token bucket at the
vendor's documented rate, and a daily quota read from the vendor's headers.
Time comes from a clock so both are testable without sleeping."""

from __future__ import annotations

import time
from typing import Protocol

from billbridge.connectors.base import RateLimit, TransientError


class MonotonicClock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


def rolling_window(requests: int, per_seconds: float) -> RateLimit:
    """A bucket that never exceeds ``requests`` in any rolling ``per_seconds``
    window (vendors count rolling windows): a burst of a tenth of the window,
    refilled at the rest (burst + rate x window = requests)."""
    burst = max(1, requests // 10)
    return RateLimit(max(1, requests - burst), per_seconds, burst=burst)


class TokenBucket:
    """Requests allowed now; refills at the documented rate up to the burst."""

    def __init__(self, limit: RateLimit, clock: MonotonicClock | None = None) -> None:
        self.rate = limit.per_second
        self.capacity = float(max(1, limit.burst))
        self.tokens = self.capacity
        self.clock = clock or RealClock()
        self.updated = self.clock.monotonic()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_time(self) -> float:
        """Seconds until one token is available (0 when one is)."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        """Wait (on the clock) until a token is free, then spend it."""
        delay = self.wait_time()
        if delay > 0:
            self.clock.sleep(delay)
            self._refill()
        self.tokens -= 1

    def drain(self) -> None:
        """The vendor said 429: assume the window is spent."""
        self._refill()
        self.tokens = min(self.tokens, 0.0)


QUOTA_EXHAUSTED = "QUOTA_EXHAUSTED"


class DailyQuota:
    """A vendor's daily API allocation, tracked from its response headers.

    When the vendor says none is left, calls are deferred until the reset
    (``TransientError`` with code ``QUOTA_EXHAUSTED``): the dispatcher and
    pollers wait, they do not fail work.
    """

    def __init__(self, clock: MonotonicClock | None = None, *, reserve: int = 0) -> None:
        self.clock = clock or RealClock()
        self.remaining: int | None = None
        self.limit: int | None = None
        self.resets_at: float | None = None
        self.reserve = reserve

    def observe(self, remaining: int | None, limit: int | None = None,
                resets_in: float | None = None) -> None:
        if remaining is not None:
            self.remaining = remaining
        if limit is not None:
            self.limit = limit
        if resets_in is not None:
            self.resets_at = self.clock.monotonic() + resets_in

    def check(self, what: str) -> None:
        """Raise when the quota is spent and has not reset yet."""
        if self.remaining is None or self.remaining > self.reserve:
            return
        now = self.clock.monotonic()
        if self.resets_at is not None and now >= self.resets_at:
            self.remaining = None  # a new day: the next answer tells us the new figure
            return
        wait = (self.resets_at - now) if self.resets_at is not None else 3600.0
        raise TransientError(f"{what}: the daily API quota is spent; waiting {wait:.0f} s "
                             "for it to reset", code=QUOTA_EXHAUSTED, retry_after=wait)
