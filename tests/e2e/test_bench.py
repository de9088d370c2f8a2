"""`billbridge bench burst` end to end on a small burst: the figures it prints
come from the emulated ERP, and a clean run posts every entry exactly once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
