"""Hub processes for the soak: `billbridge serve` and `billbridge worker`
children that can be killed with SIGKILL and started again as they were."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Member:
    """One process of the fleet, by name, with the command that starts it."""

    name: str
    args: Sequence[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    down_since: float | None = field(default=None)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Fleet:
    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.env = {**os.environ, **env}
        self.members: dict[str, Member] = {}

    def add(self, name: str, args: Sequence[str]) -> Member:
        member = Member(name, list(args), self.workdir / f"{name}.log")
        self.members[name] = member
        self.start(member)
        return member

    def start(self, member: Member) -> None:
        if member.running:
            return
        with member.log.open("ab") as log:
            member.process = subprocess.Popen(
                [sys.executable, "-m", "billbridge", *member.args], env=self.env,
                stdout=log, stderr=subprocess.STDOUT)
        member.starts += 1
        member.down_since = None

    def kill(self, member: Member) -> None:
        """SIGKILL: no clean-up, no lease released, a transaction cut off."""
        if member.process is not None and member.process.poll() is None:
            os.kill(member.process.pid, signal.SIGKILL)
            member.process.wait()
            member.kills += 1
        member.down_since = time.monotonic()

    def start_all(self) -> None:
        """Start every member that is not running (killed or crashed)."""
        for member in self.members.values():
            self.start(member)

    def crashed(self) -> list[Member]:
        """Members that exited on their own, not killed by us."""
        return [m for m in self.members.values()
                if m.process is not None and m.process.poll() is not None
                and m.down_since is None]

    def stop(self) -> None:
        for member in self.members.values():
            if member.running and member.process is not None:
                member.process.send_signal(signal.SIGTERM)
        for member in self.members.values():
            if member.process is None:
                continue
            try:
                member.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                member.process.kill()
                member.process.wait()
