"""Webhook ingest: signed webhooks at a steady rate against a real `billbridge
serve` process, from an open-loop generator in a process of its own.

Acknowledgement latency is measured from each delivery's due time (see
``loadgen``). Loss is counted by reading the hub's store after the run: a
delivery acknowledged 2xx whose event is not in the inbox is lost, and so is
one that was never acknowledged (a vendor would send it again; here it
counts against the hub)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from billbridge.bench import cpu
from billbridge.bench.loadgen import Delivery, generate
from billbridge.store.db import make_engine
from billbridge.store.tables import inbox

SECRET = "bench-secret"
SOURCE = "generic"


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (the value at or below which ``fraction`` lie)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * len(ordered) * 1000) // 1000))
    return ordered[min(len(ordered), rank) - 1]


class ServeProcess:
    """`billbridge serve` as a child process on a port of its choosing."""

    def __init__(self, database_url: str, *, extra: Iterable[str] = ()) -> None:
        command = [sys.executable, "-m", "billbridge", "serve", "--database-url", database_url,
                   "--port", "0", *extra]
        env = {**os.environ, "BILLBRIDGE_WEBHOOK_SECRET": SECRET}
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.url = self._announced_url()

    def _announced_url(self) -> str:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if "serving on " in line:
                return line.split("serving on ", 1)[1].split()[0]
        raise RuntimeError(f"billbridge serve exited: {self.stderr()}")

    def stderr(self) -> str:
        if self.process.poll() is None:
            self.process.kill()
        return self.process.communicate(timeout=10)[1][-2000:]

    def cpu_seconds(self) -> float | None:
        return cpu.process_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def stored_event_ids(database_url: str, source: str = SOURCE) -> set[str]:
    """The event ids the hub's inbox holds for ``source``: read from the store,
    not from anything the server said."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(select(inbox.c.event_id)
                                    .where(inbox.c.source == source)).scalars())
    finally:
        engine.dispose()


def summarise(deliveries: list[Delivery], stored: set[str], seconds: float) -> dict[str, Any]:
    """Latency percentiles over acknowledged deliveries and loss against the store."""
    acknowledged: list[Delivery] = []
    refused: list[Delivery] = []
    for d in deliveries:  # one pass: a 30,000-delivery run must not cost n² comparisons
        (acknowledged if d.status is not None and 200 <= d.status < 300 else refused).append(d)
    latencies = [d.latency for d in acknowledged if d.latency is not None]
    lost_after_ack = sorted(d.event_id for d in acknowledged if d.event_id not in stored)
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}  # why nothing came back: the exception's kind
    for d in refused:
        key = str(d.status) if d.status is not None else "no answer"
        statuses[key] = statuses.get(key, 0) + 1
        if d.status is None:
            kind = (d.error or "unknown").split("(", 1)[0]
            errors[kind] = errors.get(kind, 0) + 1
    lags = [d.lag for d in deliveries]
    ms = 1000.0
    return {
        "sent": len(deliveries), "acknowledged": len(acknowledged),
        "achieved_per_s": round(len(acknowledged) / seconds, 1),
        "ack_ms": {"p50": round(percentile(latencies, 0.50) * ms, 2),
                   "p90": round(percentile(latencies, 0.90) * ms, 2),
                   "p99": round(percentile(latencies, 0.99) * ms, 2),
                   "p999": round(percentile(latencies, 0.999) * ms, 2),
                   "max": round(max(latencies) * ms, 2),
                   "mean": round(statistics.fmean(latencies) * ms, 2)} if latencies else None,
        "generator_lag_ms_p99": round(percentile(lags, 0.99) * ms, 2) if lags else None,
        "lost": len(lost_after_ack) + len(refused),
        "lost_after_ack": len(lost_after_ack), "not_acknowledged": len(refused),
        "not_acknowledged_by_status": statuses,
        "no_answer_by_error": errors,
        "lost_examples": (lost_after_ack + [d.event_id for d in refused])[:5],
    }


def run(rate: float, seconds: float, *, database_url: str | None = None,
        max_connections: int = 256, serve_args: Iterable[str] = ()) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bb-ingest-"))
    url = database_url or f"sqlite:///{workdir / 'hub.db'}"
    server = ServeProcess(url, extra=serve_args)
    try:
        httpx.get(f"{server.url}/healthz", timeout=10).raise_for_status()
        run_id = uuid.uuid4().hex[:8]
        cpu_before = server.cpu_seconds()
        with concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            started = time.perf_counter()
            deliveries, generator = pool.submit(
                generate, f"{server.url}/v1/webhooks/{SOURCE}", secret=SECRET, rate=rate,
                seconds=seconds, run=run_id, max_connections=max_connections).result()
            elapsed = time.perf_counter() - started
        cpu_after = server.cpu_seconds()
    finally:
        server.stop()
    try:
        stored = stored_event_ids(url)
        result = {"rate": rate, "seconds": seconds, "database": url.split(":", 1)[0],
                  **summarise(deliveries, stored, seconds),
                  "server_cpu_seconds": (round(cpu_after - cpu_before, 2)
                                         if cpu_before is not None and cpu_after is not None
                                         else None),
                  "generator_cpu_seconds": generator["cpu_seconds"],
                  "connections_peak": generator["connections_peak"],
                  "wall_seconds": round(elapsed, 2)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result
