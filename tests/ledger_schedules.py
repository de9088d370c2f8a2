"""What the exactly-once property tests share: the HTTP ledger emulator in
each idempotency mode, an emptied store per example, and a crash hook."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine

from billbridge.connectors.base import IdempotencyMode
from billbridge.connectors.generic.emulator import LedgerEmulator
from billbridge.engine.worker import SimulatedCrash
from billbridge.store.db import migrate
from billbridge.store.tables import metadata


def ledger_emulator(mode: IdempotencyMode) -> Iterator[tuple[LedgerEmulator, IdempotencyMode]]:
    """The HTTP ledger emulator for a test, deduplicating by key (native) or
    not at all (the hub looks up its markers), as ``mode`` says."""
    emulator = LedgerEmulator(token="t", idempotency="native" if mode is IdempotencyMode.NATIVE
                              else "none")
    emulator.start()
    yield emulator, mode
    emulator.stop()


def reset_store(engine: Engine) -> None:
    """A migrated store with no rows: one example's state never reaches the next."""
    migrate(engine)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


class Crash:
    """A crash hook that fires at a given stage."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def __call__(self, stage: str, _key: str) -> None:
        if stage == self.stage:
            raise SimulatedCrash(stage)
