"""Rate limits as an emulator enforces them, and the figure a test checks:
requests counted over a rolling window, as vendors count them."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


def admit(window: deque[float], limit: int, seconds: float, now: float) -> float | None:
    """Count a request at ``now`` against ``limit`` per rolling ``seconds``:
    None when it is admitted (and recorded), else the seconds until a slot frees."""
    while window and now - window[0] >= seconds:
        window.popleft()
    if len(window) >= limit:
        return seconds - (now - window[0])
    window.append(now)
    return None


def max_in_window(times: Iterable[float], seconds: float) -> int:
    """The most of ``times`` that fall in any rolling window of ``seconds``."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, stamp in enumerate(ordered):
        while stamp - ordered[start] >= seconds:
            start += 1
        best = max(best, end - start + 1)
    return best
