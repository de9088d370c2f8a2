"""The PostgreSQL server's CPU while a command runs: the bench reports the
hub's processes and the vendors', not the database server's, whose share of
a two-core machine decides how far a fleet of workers can scale.

    .venv/bin/python benchmarks/pg_cpu.py -- .venv/bin/billbridge bench burst \
        --entries 20000 --store postgres \
        --database-url postgresql://postgres@127.0.0.1:5432/postgres --workers 1 --json

Runs the command, polling /proc every 0.1 s for every process named
``postgres*`` (backends come and go with the hub's connections; each is
counted at the last value seen, so a backend that lives less than 0.1 s may
be missed), and prints ``postgres_cpu_s`` to stderr after the command's own
output. Linux only; the server must run on this machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def _postgres_cpu() -> dict[tuple[str, str], float]:
    """CPU seconds of each postgres process now, by (pid, start time)."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        if not stat[stat.index("(") + 1:stat.rindex(")")].startswith("postgres"):
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        found[(pid, fields[19])] = (int(fields[11]) + int(fields[12])) / TICK
    return found


def main(command: list[str]) -> int:
    before = _postgres_cpu()
    seen = dict(before)
    process = subprocess.Popen(command)
    while process.poll() is None:
        seen.update(_postgres_cpu())
        time.sleep(0.1)
    seen.update(_postgres_cpu())
    total = sum(cpu - before.get(key, 0.0) for key, cpu in seen.items())
    print(f"postgres_cpu_s {total:.2f}", file=sys.stderr)
    return process.returncode


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    sys.exit(main(args))
