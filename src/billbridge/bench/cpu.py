"""CPU time as Linux's /proc counts it, for the benches: a process's own, the
machine's, and a database server's on the same machine.

The benches report what each part of a run cost while the clock ran (the
workers, the intake, the vendors, the database server), not since each
process started: a worker's start-up (imports, migrations, about a second)
is the same for one worker or four, and counted whole it hides what a
fleet costs per entry. Off Linux every reading is None."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int | str) -> tuple[str, float] | None:
    """A process's command name and its user plus system CPU seconds, from
    /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    return head.partition("(")[2], (int(fields[11]) + int(fields[12])) / _TICK


def process_seconds(pid: int) -> float | None:
    """User plus system CPU time of one process."""
    found = _stat(pid)
    return None if found is None else found[1]


def named_seconds(name: str) -> dict[int, float]:
    """CPU time of every process whose command name is ``name`` (a PostgreSQL
    server's are all ``postgres``), by pid."""
    found: dict[int, float] = {}
    try:
        pids = [entry.name for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return found
    for pid in pids:
        stat = _stat(pid)
        if stat is not None and stat[0] == name:
            found[int(pid)] = stat[1]
    return found


def spent(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU spent between two readings of a set of processes; one that
    started in between counts whole, one that ended in between is lost (the
    benches keep their connections, so the server's backends outlive the run)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def readings(pids: Iterable[int]) -> dict[int, float]:
    """``process_seconds`` of each pid still there."""
    found = {}
    for pid in pids:
        seconds = process_seconds(pid)
        if seconds is not None:
            found[pid] = seconds
    return found


def machine_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Per cent of the machine's CPU time busy between two ``machine_times``."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)
