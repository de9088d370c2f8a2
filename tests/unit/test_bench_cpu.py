"""The benches' CPU readings: one process's, a server's by name, and what a
set of processes spent between two readings."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from billbridge.bench import cpu

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def _spin(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


def test_a_process_s_cpu_grows_by_what_it_spent() -> None:
    before = cpu.process_seconds(os.getpid())
    _spin(0.3)
    after = cpu.process_seconds(os.getpid())
    assert before is not None and after is not None
    assert 0.2 <= after - before <= 1.0


def test_a_process_that_is_gone_has_no_reading() -> None:
    assert cpu.process_seconds(2**22 + 17) is None  # above Linux's largest pid
    assert cpu.readings([os.getpid(), 2**22 + 17]).keys() == {os.getpid()}


def test_processes_are_found_by_their_command_name() -> None:
    name = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    found = cpu.named_seconds(name)
    assert os.getpid() in found
    assert cpu.named_seconds("no-such-command-here") == {}


def test_spent_counts_a_new_process_whole_and_an_old_one_by_its_difference() -> None:
    before = {1: 2.0, 2: 5.0}
    after = {1: 2.5, 3: 1.25}  # 2 ended in between, 3 started
    assert cpu.spent(before, after) == pytest.approx(0.5 + 1.25)


def test_the_machine_s_busy_share_is_a_percentage_or_none() -> None:
    first = cpu.machine_times()
    _spin(0.2)
    second = cpu.machine_times()
    share = cpu.busy_share(first, second)
    assert share is not None and 0 < share <= 100
    assert cpu.busy_share(None, second) is None
    assert cpu.busy_share(second, second) is None
