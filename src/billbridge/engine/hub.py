"""The hub: one object wiring store, flows, workers, dispatcher and targets,
used by the CLI, the API, the demo and the tests alike; ``build_hub`` assembles
it from a ``HubSetup`` (store, targets, routes, clock) for every entry point."""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine, func, select

from billbridge.connectors.base import Connection, Target
from billbridge.engine import config_store, secrets
from billbridge.engine.clock import Clock, SystemClock
from billbridge.engine.dispatcher import Dispatcher, DispatcherSettings
from billbridge.engine.inbox import IngestResult, prepare, store
from billbridge.engine.policy import RetryPolicy
from billbridge.engine.worker import Worker, WorkerSettings
from billbridge.errors import Invalid
from billbridge.flows.base import FlowRegistry
from billbridge.flows.registry import default_flows
from billbridge.store import queries
from billbridge.store.db import BATCH_CHECKPOINT_PAGES, make_engine, migrate
from billbridge.store.tables import aggregates, outbox, target_leases


def make_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class HubSettings:
    routes: Mapping[str, str] = field(default_factory=lambda: {"erp": "ledger"})
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    dispatcher: DispatcherSettings = field(default_factory=DispatcherSettings)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    # While the outbox is behind, the lease holder sends instead of processing,
    # for at most this long at a time.
    dispatch_first_s: float = 10.0


class Hub:
    def __init__(self, engine: Engine | str | None, targets: Mapping[str, Target], *,
                 clock: Clock | None = None, flows: FlowRegistry | None = None,
                 settings: HubSettings | None = None, owner: str | None = None,
                 seed: int | None = None) -> None:
        import random

        self.engine = engine if isinstance(engine, Engine) else make_engine(engine)
        migrate(self.engine)
        self.clock = clock or SystemClock()
        self.settings = settings or HubSettings()
        self.owner = owner or make_owner()
        self.targets = dict(targets)
        self.dispatcher = Dispatcher(self.engine, self.targets, self.clock, self.owner,
                                     self.settings.retry, self.settings.dispatcher,
                                     rng=random.Random(seed),
                                     breaker_threshold=self.settings.breaker_threshold,
                                     breaker_cooldown=self.settings.breaker_cooldown)
        # The worker writes each command in its target's lane; the dispatcher knows how many.
        self.worker = Worker(self.engine, flows or default_flows(), self.settings.routes,
                             self.clock, self.owner, self.settings.worker,
                             lanes=self.dispatcher.lanes)
        self._processed_at = -math.inf  # when this hub's worker last processed

    def ingest(self, raws: Iterable[Any], *, source: str) -> list[IngestResult]:
        prepared = prepare(raws, source=source)  # validation holds no lock
        with self.engine.begin() as conn:
            return store(conn, prepared, clock=self.clock)

    def activate_config(self, document: dict[str, Any], *, actor: str = "system",
                        note: str | None = None) -> int:
        with self.engine.begin() as conn:
            return config_store.activate(conn, document, actor=actor, at=self.clock.now(),
                                         note=note)

    def step(self, dispatch_budget_s: float = 5.0) -> int:
        """One round of processing and dispatch; how much moved.

        The dispatcher sends until nothing is ready (or for ``dispatch_budget_s``
        at most, past what the worker just processed): one vendor batch per
        round would let the outbox grow without bound at month-end, and with
        several workers only the one holding the target's lease sends, so it
        must keep up with what all of them produce, not with its own share."""
        now = time.monotonic()
        if self.dispatcher.behind and now - self._processed_at < self.settings.dispatch_first_s:
            # The outbox is behind and this process holds a target's lease: it
            # sends, and the other workers process. (Alone, it processes again
            # once the outbox has caught up, or after ``dispatch_first_s``.)
            processed = 0
        else:
            processed = self.worker.run_once()
            self._processed_at = now
        dispatched = 0
        started = time.monotonic()
        while True:
            settled = self.dispatcher.run_once()
            dispatched += settled
            if not settled or (dispatched >= processed
                               and time.monotonic() - started >= dispatch_budget_s):
                return processed + dispatched

    def settled(self) -> bool:
        """Nothing waits in the inbox or the outbox: what came in has gone
        out, or is parked or in the exception queue."""
        with self.engine.connect() as conn:
            return (not queries.inbox_by_status(conn, "pending")
                    and not queries.outbox_depth(conn))

    def next_due_ms(self) -> int | None:
        """The next moment when something now waiting can move: a retry falling
        due, a circuit's cooldown ending, an abandoned lease expiring."""
        now = self.clock.ms()
        with self.engine.connect() as conn:
            times = [
                conn.execute(select(func.min(outbox.c.next_attempt_ms)).where(
                    outbox.c.status == "pending", outbox.c.next_attempt_ms > now)).scalar(),
                conn.execute(select(func.min(target_leases.c.circuit_until_ms)).where(
                    target_leases.c.circuit == "open",
                    target_leases.c.circuit_until_ms > now)).scalar(),
                conn.execute(select(func.min(aggregates.c.lease_until_ms)).where(
                    aggregates.c.pending > 0, aggregates.c.lease_until_ms > now)).scalar(),
            ]
        due = [int(t) for t in times if t is not None]
        return min(due) if due else None

    def run_until_idle(self, *, max_rounds: int = 10_000, wait: bool = True) -> int:
        """Process and dispatch until nothing is left that can move.

        With ``wait``, the hub also waits out retry backoff and circuit
        cooldowns (instantly on a ManualClock); work that can never move (a
        command held by its dependency's exception) is left where it is.
        """
        moved = 0
        for _ in range(max_rounds):
            n = self.step()
            moved += n
            if n:
                continue
            due = self.next_due_ms()
            if not wait or due is None:
                break
            self.clock.sleep((due - self.clock.ms()) / 1000 + 0.001)
        return moved


@dataclass(frozen=True)
class HubSetup:
    """What a hub is built from."""

    # A SQLAlchemy URL or an engine; None: $BILLBRIDGE_DATABASE_URL, else ./billbridge.db.
    store: str | Engine | None = None
    # Where commands go: ``NAME=URL`` or ``NAME=VENDOR+URL`` (credentials from the
    # environment), the name of a connection kept in the store (encrypted
    # credentials), a connection, or a target already built.
    targets: Sequence[str | Connection | Target] = ()
    routes: Mapping[str, str] | None = None  # role → target name; None: ``settings.routes``
    clock: Clock | None = None  # None: the system clock
    settings: HubSettings = field(default_factory=HubSettings)
    checkpoint_pages: int = BATCH_CHECKPOINT_PAGES  # SQLite only (store/db.py make_engine)
    flows: FlowRegistry | None = None  # None: every registered flow
    seed: int | None = None  # the dispatcher's jitter, for reproducible runs
    owner: str | None = None  # None: host, process and a random suffix


def build_hub(setup: HubSetup) -> Hub:
    """The hub ``setup`` describes, its store migrated and its targets built.
    A target that cannot be built raises ``Invalid`` saying which and why."""
    engine = (setup.store if isinstance(setup.store, Engine)
              else make_engine(setup.store, checkpoint_pages=setup.checkpoint_pages))
    migrate(engine)  # a kept connection is read from the store
    clock = setup.clock or SystemClock()
    built = [_target(engine, clock, t) for t in setup.targets]
    settings = (setup.settings if setup.routes is None
                else replace(setup.settings, routes=dict(setup.routes)))
    return Hub(engine, {t.name: t for t in built}, clock=clock, flows=setup.flows,
               settings=settings, owner=setup.owner, seed=setup.seed)


def _target(engine: Engine, clock: Clock, given: str | Connection | Target) -> Target:
    from billbridge.connectors.registry import connector, parse_connection

    try:
        if isinstance(given, str):
            if "=" in given:
                given = parse_connection(given)
            else:  # a connection kept in the store, with encrypted credentials
                given = secrets.load_kept(engine, secrets.Vault(secrets.load_key()), given,
                                          clock.now)
        if not isinstance(given, Connection):
            return given
        make = connector(given.vendor).target
    except ValueError as exc:
        raise Invalid(str(exc), code="BAD_TARGET") from None
    if make is None:
        raise Invalid(f"{given.vendor} cannot be a delivery target", code="BAD_TARGET")
    return make(given)
