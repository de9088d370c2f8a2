"""The collector's view of a long-running process's heap."""

from __future__ import annotations

import gc


def freeze_startup() -> None:
    """Keep what start-up built out of the cyclic collector's passes.

    A worker or a server builds its schema, its app, its flows and their
    validators once, and they live as long as the process: some 100,000
    objects, which every full collection would otherwise walk again (in a
    month-end burst that was a tenth of a worker's CPU, each pass 40 ms,
    stalling the round it fell in). Call it once start-up is done; what is
    frozen is never collected, so call it from the process's entry point,
    not from code that a test may run many times in one interpreter."""
    gc.collect()
    gc.freeze()


BATCH_THRESHOLDS = (50_000, 20, 10)
"""The cyclic collector's thresholds in a worker (the default: 700, 10, 10).

A worker's batch keeps its objects alive while it runs, so at the default a
young pass every 700 allocations walked them again and moved them on to the
older generations, walked in turn: over a 20,000-entry burst, 0.7–1.0 s of
a worker's 16–21 s of CPU, against 0.17–0.24 s at these (D83). A young pass
over 50,000 objects takes some 40 ms on a slow day: too long a pause for the
webhook door, so ``billbridge serve`` keeps the default."""


def tune_for_batches() -> None:
    """Set the worker's collector thresholds (``BATCH_THRESHOLDS``); called by
    ``billbridge worker`` once it is built, like ``freeze_startup``."""
    gc.set_threshold(*BATCH_THRESHOLDS)
