"""The machine reference (bench/machine.py) calibrates figures across days:
its workload must stay the same work, or old and new figures stop being
comparable. A change to it has to change this checksum, knowingly."""

from __future__ import annotations

from billbridge.bench.machine import ITEMS, ROUNDS, reference_ms, workload


def test_the_reference_workload_is_the_one_the_recorded_figures_used() -> None:
    assert (ITEMS, ROUNDS) == (10_000, 5)
    assert workload() == "cdbf4bf5765a1ce1"


def test_the_workload_depends_on_every_item() -> None:
    assert workload(100) != workload(101)


def test_the_reference_is_a_median_in_milliseconds() -> None:
    assert reference_ms(rounds=1) > 0
