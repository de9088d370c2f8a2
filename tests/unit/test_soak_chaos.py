"""The soak's chaos: what it injects, and when."""

from __future__ import annotations

import random
from pathlib import Path

from billbridge.bench.fleet import Fleet
from billbridge.bench.soak import BATCH, Chaos, SoakSettings
from billbridge.connectors.generic.emulator import LedgerEmulator, TimeSourceEmulator


def test_erp_faults_do_not_pile_up_while_no_batch_call_comes(tmp_path: Path) -> None:
    """A fault every 3-8 s for the ERP's next batch call; with none coming
    (the ERP down, its circuit open) they would pile up and fail a run of
    calls in a row once calls resume. At most one waits."""
    erp, source = LedgerEmulator(), TimeSourceEmulator()
    settings = SoakSettings(seconds=10_000, kill_every=(10_000.0, 10_000.0))
    chaos = Chaos(settings, Fleet(tmp_path, {}), erp, source, random.Random(1), lambda: None)
    for elapsed in range(0, 120, 1):
        chaos.tick(float(elapsed))
    assert erp.faults.scripted() == 1
    met = erp.faults.next_rule("POST", BATCH)  # a batch call meets it
    assert met.fault.value in ("lost_ack", "5xx")
    chaos.tick(130.0)
    assert erp.faults.scripted() == 1  # the next one is scripted in its turn
