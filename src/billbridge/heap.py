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
