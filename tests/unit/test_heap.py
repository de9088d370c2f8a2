"""Freezing start-up's heap: the long-running commands call it once they are built."""

import gc

from billbridge.heap import freeze_startup


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_startup_objects_leave_the_collector_and_later_garbage_is_still_collected() -> None:
    kept = _Cycle()
    try:
        freeze_startup()
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # frozen: no pass walks it
        _Cycle()  # garbage made after start-up, a cycle only the collector can free
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())

