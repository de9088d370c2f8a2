"""Correlation ids: 32 hex characters, ordered by the millisecond they were
made, unique, and not repeated by a forked child of the process."""

from __future__ import annotations

import os
import re
import time

from billbridge.engine.inbox import new_correlation_id


def test_ids_are_hex_ordered_by_time_and_unique() -> None:
    first = [new_correlation_id() for _ in range(10_000)]
    time.sleep(0.002)
    later = new_correlation_id()
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in first)
    assert len(set(first)) == len(first)
    assert later > max(first)


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id's random part, to the parent
        os.write(write, new_correlation_id()[12:].encode())
        os._exit(0)
    os.close(write)
    mine = new_correlation_id()[12:]
    theirs = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    assert len(theirs) == 20 and theirs != mine
