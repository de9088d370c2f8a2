"""Month-end burst: N approved time entries arrive from the emulated time tool
(a share pushed as signed, batched webhooks; all of them on poll pages), are
validated, priced and posted in batches to the emulated ERP.

The hub runs as it would in production: this process serves the webhook API
and polls (a `billbridge serve` that does no processing), and K `billbridge
worker` processes share the queue in the store. The clock runs from the start
of the burst until the ERP holds a posting for every entry. Duplicates and
losses are counted from the ERP's own postings, never from the hub's tables;
latency is each entry's time from arrival in the hub's inbox to its posting
in the ERP."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text

from billbridge.bench import cpu
from billbridge.bench.vendors import TOKEN, Posting, Vendors
from billbridge.connectors.generic.source import GenericTimeSource
from billbridge.connectors.generic.webhooks import GenericWebhooks
from billbridge.domain.times import as_utc
from billbridge.engine.hub import Hub, HubSetup, build_hub
from billbridge.store.tables import inbox
from billbridge.web import HubServer

PROJECTS = 20
PAGE = 2000  # entries per poll page: the most the time tool serves
PER_DELIVERY = 100  # entries per webhook delivery
SECRET = "bench-webhook-secret"
CONFIG: dict[str, Any] = {
    "legal_entities": [{"code": "US01", "name": "Acme", "country": "US",
                        "functional_currency": "USD"}],
    "workers": [{"id": f"w-{i}", "name": f"Worker {i}", "role": "consultant",
                 "legal_entity": "US01", "cost_rate": "80", "currency": "USD"}
                for i in range(50)],
    "rate_cards": [{"id": "rc", "version": 1, "currency": "USD",
                    "effective_from": "2026-01-01", "rates": {"consultant": "150.00"}}],
    "default_rate_card": "rc",
}

Progress = Callable[[int, int], None]


def run(entries: int, *, store: str = "sqlite", workers: int = 1, dispatchers: int = 0,
        database_url: str | None = None, webhook_share: float = 0.1, batch_size: int = 1000,
        erp_concurrency: int = 4, progress: Progress | None = None,
        keep: Path | None = None) -> dict[str, Any]:
    """Run one burst; the figures of the issue, and what they rest on. With
    ``keep`` (an empty folder, SQLite only) the hub's store and the workers'
    logs stay there afterwards, for a look at what the burst wrote."""
    if store not in ("sqlite", "postgres"):
        raise ValueError(f"store must be sqlite or postgres, not {store!r}")
    if workers < 1:
        raise ValueError("at least one worker is needed")
    if dispatchers < 0:
        raise ValueError("dispatchers cannot be negative")
    if erp_concurrency < 1:
        raise ValueError("the ERP takes at least one call at a time")
    if keep is not None and store != "sqlite":
        raise ValueError("only a SQLite store can be kept")
    workdir = keep or Path(tempfile.mkdtemp(prefix="bb-burst-"))
    try:
        with _database(store, database_url, workdir) as url:
            return _burst(entries, url, workers, dispatchers, webhook_share, batch_size,
                          erp_concurrency, workdir, progress)
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _database(store: str, server_url: str | None, workdir: Path) -> Iterator[str]:
    """A SQLite file in the work folder, or a scratch database on the given
    PostgreSQL server (dropped afterwards: the bench never writes elsewhere)."""
    if store == "sqlite":
        yield f"sqlite:///{workdir / 'hub.db'}"
        return
    if not server_url or not server_url.startswith(("postgresql://", "postgres://")):
        raise ValueError("--store postgres needs --database-url postgresql://… of a server")
    name = f"bb_burst_{uuid.uuid4().hex[:12]}"
    base = server_url.split("://", 1)[1].rpartition("/")[0]
    admin = create_engine(f"postgresql+psycopg://{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _burst(entries: int, url: str, workers: int, dispatchers: int, webhook_share: float,
           batch_size: int, erp_concurrency: int, workdir: Path,
           progress: Progress | None) -> dict[str, Any]:
    vendors = Vendors(entries, PROJECTS)
    # The intake side: it takes work in and leaves it to the workers.
    hub = build_hub(HubSetup(store=url))
    hub.activate_config(CONFIG)
    processes = _start_workers(url, vendors.ledger_url, workers, dispatchers, batch_size,
                               erp_concurrency, workdir)
    try:
        _open_projects(hub, vendors, processes, workdir)
        clock = _month_end(hub, vendors, processes, workdir, entries, webhook_share, progress)
        _stop(processes, workdir)
        left = _what_it_left(hub, vendors, processes, workdir)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        usage = vendors.stop()
        hub.engine.dispose()
    return {**_figures(entries, clock, left),
            "store": url.split(":", 1)[0], "workers": workers, "dispatchers": dispatchers,
            "erp_concurrency": erp_concurrency,
            **_costs(entries, clock, left, usage)}


@dataclass(frozen=True)
class _Clock:
    """What the clock saw, from the first delivery to the ERP's posting of the
    last entry, and the intake's usage once nothing was left to send."""

    seconds: float
    pushed: list[str]  # the entries also pushed as webhooks
    machine_busy: float | None
    in_window: dict[str, float | None]
    intake: resource.struct_rusage


@dataclass(frozen=True)
class _Left:
    """What the run left behind, read once the workers have stopped: the
    ERP's postings and calls, the vendor's view of its webhooks, the workers'
    usage and logs, and when each entry arrived in the inbox."""

    postings: list[Posting]
    erp_calls: int
    webhook_statuses: list[int]
    crew: resource.struct_rusage
    logs: str
    arrived: dict[str, Any]


def _open_projects(hub: Hub, vendors: Vendors, processes: list[subprocess.Popen[bytes]],
                   workdir: Path) -> None:
    """The projects exist before month-end; posting them also proves the workers are up."""
    hub.ingest([{"type": "project.updated", "id": f"p-{p}", "at": "2026-03-01T00:00:00Z",
                 "data": {"code": f"P-{p}", "name": f"P-{p}", "status": "active"}}
                for p in range(PROJECTS)], source="psa")
    _wait(lambda: vendors.applied("project.upsert") >= PROJECTS, processes, workdir)
    if hub.engine.dialect.name == "postgresql":
        # A database in use has been analysed by autovacuum; a scratch one has
        # not, and without statistics PostgreSQL plans the workers' batch
        # look-ups (IN lists of hundreds of ids) as scans of whole tables.
        with hub.engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def _month_end(hub: Hub, vendors: Vendors, processes: list[subprocess.Popen[bytes]],
               workdir: Path, entries: int, webhook_share: float,
               progress: Progress | None) -> _Clock:
    """Serve the webhook API and poll, push the webhook share, and time the
    hub until the ERP holds a posting for every entry."""
    started = time.perf_counter()
    machine = cpu.machine_times()
    window = _Window(processes, vendors, postgres=hub.engine.dialect.name == "postgresql")
    server = HubServer(hub, port=0, sources=[GenericTimeSource(vendors.tool_url, per_page=PAGE)],
                       webhooks={"generic": GenericWebhooks(SECRET)}, poll_seconds=3600,
                       process=False)
    server.start()
    try:
        pushed = [f"te-{i}" for i in range(entries)
                  if webhook_share and i % max(1, round(1 / webhook_share)) == 0]
        vendors.push_webhooks(f"{server.url}/v1/webhooks/generic", SECRET, pushed,
                              PER_DELIVERY)

        def posted_all() -> bool:
            posted = vendors.applied()
            if progress is not None:
                progress(min(posted, entries), entries)
            return posted >= entries

        _wait(posted_all, processes, workdir)
        seconds = time.perf_counter() - started
        busy = cpu.busy_share(machine, cpu.machine_times())
        in_window = window.close()
        # Nothing left to send, so no late duplicate can still come.
        _wait(lambda: hub.settled() and vendors.webhook_statuses() is not None, processes,
              workdir)
        intake = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        server.stop()
    return _Clock(seconds, pushed, busy, in_window, intake)


def _what_it_left(hub: Hub, vendors: Vendors, processes: list[subprocess.Popen[bytes]],
                  workdir: Path) -> _Left:
    crew = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, all waited for
    logs = "".join((workdir / f"worker-{i}.log").read_text(errors="replace")
                   for i in range(len(processes)))
    statuses = vendors.webhook_statuses() or []
    postings = vendors.postings()
    calls = vendors.erp_calls()
    with hub.engine.connect() as conn:
        arrived = dict(conn.execute(select(inbox.c.event_id, inbox.c.received_at)
                                    .where(inbox.c.source == "generic")).all())
    return _Left(postings, calls, statuses, crew, logs, arrived)


def _figures(entries: int, clock: _Clock, left: _Left) -> dict[str, Any]:
    """Throughput, duplicates and losses counted from the ERP's postings, latency."""
    per_entry = Counter(p.time_entry for p in left.postings)
    expected = {f"te-{i}" for i in range(entries)}
    latencies = _latencies(left.postings, left.arrived)
    intake, crew = clock.intake, left.crew
    return {
        "entries": entries, "seconds": round(clock.seconds, 3),
        "entries_per_s": round(entries / clock.seconds, 1),
        "erp_calls": left.erp_calls,
        # A second posting of an entry is a duplicate, whatever key it came with.
        "duplicates": sum(n - 1 for n in per_entry.values()),
        "lost": len(expected - per_entry.keys()),
        "peak_rss_mb": round(max(intake.ru_maxrss, crew.ru_maxrss) / 1024, 1),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(_percentile(latencies, 0.99), 1) if latencies else None,
    }


def _costs(entries: int, clock: _Clock, left: _Left, usage: dict[str, float]) -> dict[str, Any]:
    """The webhooks' outcome, what each part of the run cost, and the workers' contention."""
    intake, crew = clock.intake, left.crew
    return {
        "webhook_entries": len(clock.pushed),
        "webhook_errors": sum(1 for s in left.webhook_statuses if s != 202),
        "hub_cpu_s": round(intake.ru_utime + intake.ru_stime + crew.ru_utime +
                           crew.ru_stime, 1),
        "intake_cpu_s": round(intake.ru_utime + intake.ru_stime, 1),
        "workers_cpu_s": round(crew.ru_utime + crew.ru_stime, 1),
        "intake_rss_mb": round(intake.ru_maxrss / 1024, 1),
        "worker_rss_mb": round(crew.ru_maxrss / 1024, 1),
        "vendors_cpu_s": round(usage["cpu_s"], 1),
        "vendors_rss_mb": round(usage["peak_rss_mb"], 1),
        # What each part cost while the clock ran (the figures above count
        # each process whole, start-up included), and per entry.
        "window_cpu_s": {part: None if s is None else round(s, 2)
                         for part, s in clock.in_window.items()},
        "cpu_us_per_entry": {part: None if s is None else round(1e6 * s / entries, 1)
                             for part, s in clock.in_window.items()},
        # How busy the whole machine's CPUs were while the clock ran (the
        # database server included): near 100 means more processes cannot help.
        "machine_cpu_busy_pct": clock.machine_busy,
        # Contention between workers, from their logs: batches the store refused
        # (run again one event at a time) and aggregate leases lost mid-batch.
        "refused_batches": left.logs.count("batch refused"),
        "leases_lost": left.logs.count("lease lost"),
    }


def _start_workers(url: str, ledger_url: str, count: int, dispatchers: int, batch_size: int,
                   erp_concurrency: int, workdir: Path) -> list[subprocess.Popen[bytes]]:
    """``count`` workers; with ``dispatchers``, that many more processes send to
    the ERP and the workers only process. Whichever dispatchers are free send,
    up to ``erp_concurrency`` calls at once (one per lane)."""
    env = {**os.environ, "BILLBRIDGE_LEDGER_TOKEN": TOKEN,
           # The bench measures the hub, not a vendor's request budget.
           "BILLBRIDGE_LEDGER_RATE_PER_SECOND": "100000",
           "BILLBRIDGE_LEDGER_CONCURRENCY": str(erp_concurrency)}
    command = [sys.executable, "-m", "billbridge", "worker", "--database-url", url,
               "--target", f"ledger={ledger_url}", "--batch-size", str(batch_size)]
    roles = [["--no-dispatch"]] * count + [["--no-process"]] * dispatchers if dispatchers \
        else [[]] * count
    return [subprocess.Popen(command + role, env=env, stdout=subprocess.DEVNULL,
                             stderr=(workdir / f"worker-{i}.log").open("wb"))
            for i, role in enumerate(roles)]


def _wait(done: Callable[[], bool], processes: list[subprocess.Popen[bytes]],
          workdir: Path, poll: float = 0.1) -> None:
    """Wait for ``done``; a worker that dies meanwhile stops the bench, with its log."""
    while not done():
        for i, process in enumerate(processes):
            if process.poll() is not None:
                log = (workdir / f"worker-{i}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"worker {i} exited with {process.returncode}:\n{log}")
        time.sleep(poll)


class _Window:
    """CPU readings of the run's parts at the start of the clock, to be
    closed at its end: the workers, this process (the intake), the vendors'
    process and, on PostgreSQL on this machine, the database server."""

    def __init__(self, processes: list[subprocess.Popen[bytes]], vendors: Vendors, *,
                 postgres: bool) -> None:
        self._workers = [p.pid for p in processes]
        self._vendors = vendors.pid
        self._postgres = postgres
        self._before = self._read()

    def _read(self) -> dict[str, dict[int, float]]:
        vendors = [self._vendors] if self._vendors is not None else []
        return {"workers": cpu.readings(self._workers),
                "intake": cpu.readings([os.getpid()]),
                "vendors": cpu.readings(vendors),
                "database": cpu.named_seconds("postgres") if self._postgres else {}}

    def close(self) -> dict[str, float | None]:
        after = self._read()
        return {part: cpu.spent(self._before[part], after[part]) if after[part] else None
                for part in after}


def _stop(processes: list[subprocess.Popen[bytes]], workdir: Path) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for i, process in enumerate(processes):
        if process.wait(timeout=60) != 0:
            log = (workdir / f"worker-{i}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"worker {i} exited with {process.returncode}:\n{log}")


def _latencies(postings: list[Any], arrived: dict[str, Any]) -> list[float]:
    """Milliseconds from each entry's arrival in the inbox to its first posting."""
    first: dict[str, str] = {}
    for posting in postings:
        first.setdefault(posting.time_entry, posting.applied_at)
    result = []
    for entry, applied_at in first.items():
        received = arrived.get(f"{entry}:v1")
        if received is None:
            continue
        if isinstance(received, str):
            received = datetime.fromisoformat(received)
        took = datetime.fromisoformat(applied_at) - as_utc(received)
        result.append(took.total_seconds() * 1000)
    return result


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
