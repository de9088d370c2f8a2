"""The chaos soak: a month-end of time entries through a hub on PostgreSQL
while things go wrong, then a three-way reconciliation of source, hub and ERP.

The fleet is `billbridge serve` (webhooks only), processing workers that also
poll the time source (their polls overlap), and dispatchers, all separate
processes. For the run's length the time tool creates and edits entries and
sends each change as a signed webhook: at once, late (so an older version can
arrive after a newer one), twice, or not at all (the polls must find it).
Meanwhile random processes are killed with SIGKILL and started again, the
ERP (the generic ledger, which here deduplicates nothing: the hub's marker
look-ups must) goes down for a minute, 429 storms hit the ERP and the time
source, and every few seconds the ERP's next batch call either applies and
drops its acknowledgement or fails with a 503.
Then the chaos stops, the hub is given time to settle, and the verdict is
read from the source emulator, the hub's store and the ERP emulator.
"""

from __future__ import annotations

import heapq
import json
import random
import shutil
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from billbridge.bench.burst import CONFIG
from billbridge.bench.fleet import Fleet, Member
from billbridge.bench.soak_check import Verdict, check_erp, check_hub, queues
from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator, TimeSourceEmulator
from billbridge.connectors.generic.webhooks import sign
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.engine.hub import HubSetup, build_hub
from billbridge.store.db import make_engine, scratch_database
from billbridge.store.tables import inbox

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET = "soak-secret"
PROJECTS = [f"S-{i}" for i in range(6)]
LATE_PROJECT = "S-late"  # activated part-way: its early time parks, then posts
BATCH = "/v1/postings:batch"
STORM = {"429": 0.7}  # of every request, look-ups and polls included
SLOW_SETTLE_SECONDS = 30.0  # a run that took longer to settle keeps its processes' logs


@dataclass(frozen=True)
class SoakSettings:
    seconds: float = 300.0  # of traffic and chaos; settling comes after
    settle_seconds: float = 300.0
    erp_down_seconds: float = 60.0
    storm_seconds: float = 15.0
    kill_every: tuple[float, float] = (12.0, 25.0)
    workers: int = 3
    dispatchers: int = 2
    new_per_s: float = 4.0
    edits_per_s: float = 1.5
    seed: int = 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url, timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _project_event(code: str) -> dict[str, Any]:
    return {"type": "project.updated", "id": f"project:{code}:active",
            "at": "2026-03-01T00:00:00Z",
            "data": {"code": code, "name": f"Project {code}", "status": "active"}}


class Traffic:
    """The time tool's side: entries created and edited in the emulated source,
    each change sent as a signed webhook now, late, twice or never; refused or
    unanswered deliveries are sent again later, as vendors do."""

    def __init__(self, source: TimeSourceEmulator, hook_url: str, rng: random.Random) -> None:
        self.source, self.hook_url, self.rng = source, hook_url, rng
        self.client = httpx.Client(timeout=3)
        self.queue: list[tuple[float, int, bytes]] = []
        self.created = self.edits = 0
        self.counts: Counter[str] = Counter()

    def generate(self, dt: float, new_per_s: float, edits_per_s: float) -> None:
        for _ in range(self._how_many(new_per_s * dt)):
            n = self.created
            self.created += 1
            self._changed(self.source.upsert({
                "id": f"te-{n}", "worker": f"w-{n % 50}",
                "project": self.rng.choice([*PROJECTS, LATE_PROJECT]), "task": "dev",
                "work_date": "2026-03-02", "hours": self.rng.choice(["0.5", "1", "2", "4", "8"]),
                "billable": True, "notes": "",
                "status": "approved" if self.rng.random() < 0.9 else "submitted"}))
        for _ in range(self._how_many(edits_per_s * dt)):
            if not self.created:
                return
            self.edits += 1
            roll = self.rng.random()
            change: dict[str, Any] = ({"hours": self.rng.choice(["1.5", "3", "6", "7.5"])}
                                      if roll < 0.7 else
                                      {"status": "rejected" if roll < 0.8 else "approved"})
            self._changed(self.source.upsert({"id": f"te-{self.rng.randrange(self.created)}",
                                              **change}))

    def _how_many(self, expected: float) -> int:
        whole = int(expected)
        return whole + (1 if self.rng.random() < expected - whole else 0)

    def _changed(self, entry: dict[str, Any]) -> None:
        body = json.dumps({"event_id": f"{entry['id']}:v{entry['version']}",
                           "event": "time_entry.upserted", "occurred_at": entry["updated_at"],
                           "time_entry": entry}).encode()
        roll, now = self.rng.random(), time.monotonic()
        if roll < 0.12:
            self.counts["never"] += 1
            return
        delay = 0.0
        if roll < 0.27:
            self.counts["late"] += 1
            delay = self.rng.uniform(2, 10)
        self._push(now + delay, body)
        if self.rng.random() < 0.2:
            self.counts["twice"] += 1
            self._push(now + delay + self.rng.uniform(0, 3), body)

    def _push(self, due: float, body: bytes) -> None:
        heapq.heappush(self.queue, (due, self.rng.getrandbits(32), body))

    def deliver_due(self, limit: int = 40) -> None:
        now = time.monotonic()
        for _ in range(limit):
            if not self.queue or self.queue[0][0] > now:
                return
            _, _, body = heapq.heappop(self.queue)
            stamp = str(int(time.time()))
            self.counts["sent"] += 1
            try:
                answer = self.client.post(self.hook_url, content=body, headers={
                    "Content-Type": "application/json", "X-Generic-Timestamp": stamp,
                    "X-Generic-Signature": sign(SECRET, stamp, body)})
                outcome = f"answered {answer.status_code}"
            except httpx.HTTPError as exc:
                outcome = f"failed {exc.__class__.__name__}"
            self.counts[outcome] += 1
            if not outcome.startswith("answered 2"):
                self._push(now + self.rng.uniform(1, 3), body)

    def close(self) -> None:
        self.client.close()


class Chaos:
    """What goes wrong and when: kills at random intervals, the ERP down once,
    two 429 storms; everything on one seeded random generator."""

    def __init__(self, settings: SoakSettings, fleet: Fleet, erp: LedgerEmulator,
                 source: TimeSourceEmulator, rng: random.Random,
                 activate_late_project: Callable[[], object]) -> None:
        self.settings, self.fleet, self.erp, self.source, self.rng = \
            settings, fleet, erp, source, rng
        length = settings.seconds
        self.timeline: list[tuple[float, str]] = sorted([
            (0.15 * length, "storm"), (0.15 * length + settings.storm_seconds, "calm"),
            (0.30 * length, "erp down"),
            (0.30 * length + settings.erp_down_seconds, "erp up"),
            (0.45 * length, "activate late project"),
            (0.70 * length, "storm"), (0.70 * length + settings.storm_seconds, "calm")])
        self.activate_late_project = activate_late_project
        self.next_kill = self._kill_gap()
        self.next_fault = self.rng.uniform(3, 8)
        self.restarts: list[tuple[float, Member]] = []
        self.erp_down_for = 0.0
        self.crashes: list[str] = []
        self.log: list[str] = []

    def _kill_gap(self) -> float:
        return self.rng.uniform(*self.settings.kill_every)

    def tick(self, elapsed: float) -> None:
        while self.timeline and self.timeline[0][0] <= elapsed:
            _, what = self.timeline.pop(0)
            self.log.append(f"{elapsed:6.1f} s {what}")
            self._apply(what)
        if elapsed >= self.next_kill:
            self.next_kill = elapsed + self._kill_gap()
            victim = self.rng.choice([m for m in self.fleet.members.values() if m.running])
            self.fleet.kill(victim)
            self.log.append(f"{elapsed:6.1f} s SIGKILL {victim.name}")
            self.restarts.append((elapsed + self.rng.uniform(1, 4), victim))
        if elapsed >= self.next_fault:
            self.next_fault = elapsed + self.rng.uniform(3, 8)
            fault = Fault.LOST_ACK if self.rng.random() < 0.7 else Fault.SERVER_ERROR
            # One at a time: while no batch call comes (the ERP down, its circuit
            # open) faults would pile up and then fail a run of calls in a row,
            # each pile reopening the circuit for another cooldown.
            if not self.erp.faults.scripted():
                self.erp.faults.script([FaultRule(fault, path_prefix=BATCH)])
        for due, member in list(self.restarts):
            if due <= elapsed:
                self.restarts.remove((due, member))
                self.fleet.start(member)
        for member in self.fleet.crashed():  # a crash, not a kill: noted, then restarted
            assert member.process is not None
            self.crashes.append(f"{member.name} exited {member.process.returncode} at "
                                f"{elapsed:.0f} s (see {member.log})")
            self.fleet.start(member)

    def _apply(self, what: str) -> None:
        if what == "storm":
            self.erp.faults.set_random(self.rng.randrange(1 << 30), STORM)
            self.source.faults.set_random(self.rng.randrange(1 << 30), STORM)
        elif what == "calm":  # the storm ends; faults scripted for coming batches stay
            self.erp.faults.set_random(0, {})
            self.source.faults.set_random(0, {})
        elif what == "erp down":
            self.erp.stop()
            self.erp_down_for -= time.monotonic()
        elif what == "erp up":
            self.erp.start()
            self.erp_down_for += time.monotonic()
        else:
            self.activate_late_project()

    def end(self) -> None:
        """Stop the chaos: what is pending on the timeline that undoes harm runs
        now (the ERP comes back, storms calm); dead processes start again."""
        for _, what in self.timeline:
            if what in ("erp up", "activate late project"):
                self._apply(what)
        self.timeline = []
        self._apply("calm")
        self.restarts = []
        self.fleet.start_all()


def _verdict(url: str, source: TimeSourceEmulator, erp: LedgerEmulator) -> Verdict:
    verdict = Verdict()
    entries = source.entries()
    check_erp(entries, erp.effects, verdict)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            check_hub(conn, entries, verdict)
    finally:
        engine.dispose()
    return verdict


def _start_fleet(settings: SoakSettings, workdir: Path, url: str, erp: LedgerEmulator,
                 source: TimeSourceEmulator) -> tuple[Fleet, str]:
    """serve (webhooks only), polling workers and dispatchers; the webhook URL."""
    fleet = Fleet(workdir, {"BILLBRIDGE_LEDGER_TOKEN": "t",
                            "BILLBRIDGE_LEDGER_IDEMPOTENCY": "marker_lookup",
                            # Dispatchers share the ERP in lanes: several calls
                            # at once, each aggregate's in order.
                            "BILLBRIDGE_LEDGER_CONCURRENCY": "3",
                            "BILLBRIDGE_WEBHOOK_SECRET": SECRET})
    port = _free_port()
    common = ["--database-url", url, "--target", f"ledger={erp.url}"]
    fleet.add("serve", ["serve", *common, "--port", str(port), "--no-engine"])
    for i in range(settings.workers):
        fleet.add(f"worker-{i}", ["worker", *common, "--lease-seconds", "3",
                                  "--batch-size", "20", "--no-dispatch",
                                  "--source", f"generic={source.url}"])
    for i in range(settings.dispatchers):
        fleet.add(f"dispatcher-{i}", ["worker", *common, "--lease-seconds", "3",
                                      "--no-process"])
    _wait_until_up(f"http://127.0.0.1:{port}/healthz")
    return fleet, f"http://127.0.0.1:{port}/v1/webhooks/generic"


def _storm_and_traffic(settings: SoakSettings, traffic: Traffic, chaos: Chaos,
                       progress: Callable[[str], None]) -> None:
    started = last = time.monotonic()
    reported = 0
    while (now := time.monotonic()) - started < settings.seconds:
        traffic.generate(now - last, settings.new_per_s, settings.edits_per_s)
        last = now
        traffic.deliver_due()
        chaos.tick(now - started)
        for line in chaos.log[reported:]:
            progress(line)
        reported = len(chaos.log)
        time.sleep(0.1)
    chaos.end()
    progress(f"traffic stopped after {settings.seconds:.0f} s: {traffic.created} entries, "
             f"{traffic.edits} edits, {chaos.erp.faults.scripted()} ERP fault(s) still "
             "scripted; settling")


def _settle(settings: SoakSettings, traffic: Traffic, judge: Callable[[], Verdict],
            progress: Callable[[str], None] = lambda line: None,
            waiting: Callable[[], str] = lambda: "") -> tuple[Verdict, float]:
    """Deliver the webhooks still owed and wait until the verdict is clean, or
    the time is up; the last verdict and how long it took. Each look that is
    not clean yet is reported (what is still wrong, and an example), so a
    slow settling says what it waited for."""
    started = time.monotonic()
    checked = 0.0
    while time.monotonic() - started < settings.settle_seconds:
        traffic.deliver_due(limit=200)
        if not traffic.queue and time.monotonic() - checked > 5:
            checked = time.monotonic()
            verdict = judge()
            if verdict.ok:
                break
            progress(f"{checked - started:6.1f} s settling: {_unsettled(verdict)}")
            if (state := waiting()):
                progress(f"{'':8} the hub: {state}")
        time.sleep(0.2)
    return judge(), time.monotonic() - started


def _queues(engine: Engine) -> str:
    with engine.connect() as conn:
        return queues(conn, int(time.time() * 1000))


def _unsettled(verdict: Verdict) -> str:
    """What a verdict still finds wrong: a count per kind and one example."""
    figures = verdict.as_json()
    wrong = {name: figures[name] for name in ("lost", "duplicates", "stale", "orphans",
                                              "out_of_order", "hub") if figures[name]}
    examples = figures["examples"]
    first = next(iter(examples.values()))[0] if examples else ""
    return ", ".join(f"{n} {name}" for name, n in wrong.items()) + f" (e.g. {first})"


def run(settings: SoakSettings, *, server_url: str = DEFAULT_SERVER,
        progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bb-soak-"))
    rng = random.Random(settings.seed)
    with scratch_database(server_url, prefix="bb_soak") as url:
        erp = LedgerEmulator(token="t", idempotency="none", port=_free_port())
        source = TimeSourceEmulator(port=_free_port())
        erp.start()
        source.start()
        hub = build_hub(HubSetup(store=url, targets=[LedgerTarget(erp.url, "t")]))
        hub.activate_config(CONFIG, note="soak")
        hub.ingest([_project_event(p) for p in PROJECTS], source="psa")
        fleet, hook_url = _start_fleet(settings, workdir, url, erp, source)
        traffic = Traffic(source, hook_url, rng)
        chaos = Chaos(settings, fleet, erp, source, rng, lambda: hub.ingest(
            [_project_event(LATE_PROJECT)], source="psa"))
        try:
            _storm_and_traffic(settings, traffic, chaos, progress)
            verdict, settled_after = _settle(settings, traffic,
                                             lambda: _verdict(url, source, erp), progress,
                                             lambda: _queues(hub.engine))
        finally:
            fleet.stop()
            traffic.close()
            erp.stop()
            source.stop()
        with hub.engine.connect() as conn:
            repeats = conn.execute(select(func.coalesce(func.sum(inbox.c.duplicates), 0))
                                   ).scalar()
        hub.engine.dispose()
    ok = verdict.ok and not chaos.crashes
    keep_logs = not ok or settled_after >= SLOW_SETTLE_SECONDS
    if not keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "ok": ok, "settings": asdict(settings),
        "verdict": verdict.as_json(), "settled_after_s": round(settled_after, 1),
        "entries": traffic.created, "edits": traffic.edits, "webhooks": traffic.counts,
        "inbox_repeats_dropped": int(repeats or 0),
        "kills": {m.name: m.kills for m in fleet.members.values()},
        "crashes": chaos.crashes, "erp_down_s": round(chaos.erp_down_for, 1),
        "faults_injected": {"erp": {k.value: v for k, v in erp.faults.injected.items()},
                            "time_source": {k.value: v
                                            for k, v in source.faults.injected.items()}},
        "erp_calls": erp.calls,
        "logs": str(workdir) if keep_logs else None,
    }
