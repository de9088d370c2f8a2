"""`billbridge bench burst` end to end on a small burst: the figures it prints
come from the emulated ERP, and a clean run posts every entry exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from conftest import PG_URL, skip_without_pg

pytestmark = pytest.mark.slow


def test_burst_posts_every_entry_once_and_says_how_fast() -> None:
    run = subprocess.run([sys.executable, "-m", "billbridge", "bench", "burst", "--entries",
                          "300", "--json"], capture_output=True, text=True, timeout=170)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert result["entries"] == 300
    assert result["duplicates"] == 0 and result["lost"] == 0
    assert result["webhook_entries"] == 30 and result["webhook_errors"] == 0
    # 300 charges in batches of at most 100, plus the warm-up's project upserts.
    assert result["erp_calls"] >= 3
    assert result["entries_per_s"] > 0 and 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["peak_rss_mb"] > 0
    assert result["machine_reference_ms"] > 0  # what the figures compare against
    # CPU while the clock ran, by part: the workers processed and sent 300
    # entries, the intake took them in; no PostgreSQL server on SQLite.
    window = result["window_cpu_s"]
    assert window["workers"] > 0 and window["intake"] > 0 and window["vendors"] > 0
    assert window["database"] is None
    assert window["workers"] < result["workers_cpu_s"]  # start-up is not in it
    assert result["cpu_us_per_entry"]["workers"] == pytest.approx(
        1e6 * window["workers"] / 300, rel=0.05)


def test_bench_machine_prints_the_reference_workload_s_time() -> None:
    run = subprocess.run([sys.executable, "-m", "billbridge", "bench", "machine", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert result["rounds"] == 5 and result["machine_reference_ms"] > 0


def test_burst_with_a_separate_dispatcher_posts_every_entry_once() -> None:
    """Two workers that only process and one process that only sends: the split
    deployment of `billbridge worker --no-dispatch` / `--no-process`."""
    run = subprocess.run([sys.executable, "-m", "billbridge", "bench", "burst", "--entries",
                          "300", "--workers", "2", "--dispatchers", "1", "--json"],
                         capture_output=True, text=True, timeout=170)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert (result["workers"], result["dispatchers"]) == (2, 1)
    assert result["duplicates"] == 0 and result["lost"] == 0


@pytest.mark.postgres
def test_burst_on_postgresql_counts_the_database_server_s_cpu() -> None:
    """On PostgreSQL on this machine the server's CPU while the clock ran is
    reported too: the part of the cost that is neither the hub's nor the
    vendors'."""
    skip_without_pg()
    assert PG_URL
    run = subprocess.run([sys.executable, "-m", "billbridge", "bench", "burst", "--entries",
                          "300", "--store", "postgres", "--database-url", PG_URL, "--json"],
                         capture_output=True, text=True, timeout=170)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert result["duplicates"] == 0 and result["lost"] == 0
    if urlsplit(PG_URL).hostname in ("127.0.0.1", "localhost", "::1", None):
        assert result["window_cpu_s"]["database"] > 0
        assert result["cpu_us_per_entry"]["database"] > 0
