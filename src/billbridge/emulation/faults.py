"""Fault injection: a script of faults for the next requests, then seeded
random faults, so a test can say exactly what goes wrong and when."""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"  # answer only after the client has given up (the write still applies)
    SERVER_ERROR = "5xx"  # refuse with a 5xx; nothing applies
    RATE_LIMITED = "429"  # refuse with 429 and Retry-After; nothing applies
    LOST_ACK = "lost_ack"  # apply the write, then drop the connection without an answer
    HOLD = "hold"  # wait until released (or ``delay`` runs out), then answer as usual


@dataclass(frozen=True, slots=True)
class FaultRule:
    fault: Fault
    status: int = 503
    retry_after: int | None = 1
    delay: float = 2.0
    path_prefix: str | None = None

    @classmethod
    def parse(cls, spec: str | Fault | FaultRule) -> FaultRule:
        """``"429"``, ``"429:0"`` (Retry-After 0), ``"5xx"``, ``"502"``,
        ``"timeout"``, ``"timeout:0.3"`` (delay), ``"lost_ack"``, ``"hold"``,
        ``"hold:60"`` (the longest it waits for ``release``), ``"ok"``."""
        if isinstance(spec, FaultRule):
            return spec
        if isinstance(spec, Fault):
            return cls(spec)
        name, _, arg = spec.strip().partition(":")
        if name == "429":
            return cls(Fault.RATE_LIMITED, retry_after=int(arg) if arg else 1)
        if name == "5xx":
            return cls(Fault.SERVER_ERROR, status=int(arg) if arg else 503)
        if name.isdigit() and 500 <= int(name) <= 599:
            return cls(Fault.SERVER_ERROR, status=int(name))
        if name == "timeout":
            return cls(Fault.TIMEOUT, delay=float(arg) if arg else 2.0)
        if name == "hold":
            return cls(Fault.HOLD, delay=float(arg) if arg else HOLD_LIMIT)
        if name in ("lost_ack", "ok"):
            return cls(Fault(name))
        raise ValueError(f"unknown fault {spec!r}: use ok, 5xx[:STATUS], 429[:SECONDS], "
                         "timeout[:SECONDS], lost_ack or hold[:SECONDS]")

    def matches(self, path: str) -> bool:
        return self.path_prefix is None or path.startswith(self.path_prefix)


OK = FaultRule(Fault.OK)
HOLD_LIMIT = 30.0  # a held request answers by itself after this, so a test cannot wedge it


@dataclass(frozen=True, slots=True)
class HeldRequest:
    """A request a ``hold`` fault stopped: what it asked, for the test to read."""

    method: str
    path: str
    body: bytes


class FaultInjector:
    """Thread-safe source of the fault for each incoming request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[FaultRule] = deque()
        self._random: random.Random | None = None
        self._rates: dict[Fault, float] = {}
        self.injected: Counter[Fault] = Counter()
        self._gate = threading.Event()  # set by release(): every request held so far goes on
        self._held: list[HeldRequest] = []
        self._arrived = threading.Condition(self._lock)

    def script(self, rules: Iterable[FaultRule | Fault | str]) -> None:
        parsed = [FaultRule.parse(r) for r in rules]
        with self._lock:
            self._script.extend(parsed)

    def scripted(self) -> int:
        """How many scripted faults have not met their request yet."""
        with self._lock:
            return len(self._script)

    def set_random(self, seed: int, rates: Mapping[Fault | str, float]) -> None:
        with self._lock:
            self._random = random.Random(seed)
            self._rates = {Fault(k): float(v) for k, v in rates.items()}

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
            self._random = None
            self._rates = {}
        self.release()

    # -- holding -------------------------------------------------------------
    def hold(self, request: HeldRequest, rule: FaultRule) -> None:
        """Block the calling request thread until ``release`` (or ``rule.delay``).

        The emulator's lock is not held meanwhile: other requests are served,
        as a real system serves others while one caller's request is slow."""
        with self._lock:
            gate = self._gate
            self._held.append(request)
            self._arrived.notify_all()
        gate.wait(timeout=rule.delay)

    def wait_held(self, timeout: float) -> HeldRequest | None:
        """The first request held since the last release, once one is."""
        with self._arrived:
            self._arrived.wait_for(lambda: bool(self._held), timeout=timeout)
            return self._held[0] if self._held else None

    def release(self) -> None:
        """Let every held request go on; later holds wait for the next release."""
        with self._lock:
            gate, self._gate = self._gate, threading.Event()
            self._held = []
        gate.set()

    def next_rule(self, method: str, path: str) -> FaultRule:
        with self._lock:
            for index, rule in enumerate(self._script):
                if rule.matches(path):
                    del self._script[index]
                    return self._count(rule)
            if self._random is not None:
                roll = self._random.random()
                for fault, rate in self._rates.items():
                    if roll < rate:
                        return self._count(FaultRule(fault, retry_after=0, delay=0.5))
                    roll -= rate
        return OK

    def _count(self, rule: FaultRule) -> FaultRule:
        if rule.fault is not Fault.OK:
            self.injected[rule.fault] += 1
        return rule
