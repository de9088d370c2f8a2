"""`billbridge bench burst` end to end on a small burst: the figures it prints
come from the emulated ERP, and a clean run posts every entry exactly once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from billbridge.bench import burst, floor, summary
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
    # The store's floor under the burst's own rows, measured straight after it,
    # and the burst as ratios to it.
    us = result["floor"]["lifecycle_cpu_us_per_entry"]
    assert us > 0 and result["floor"]["rows_per_entry"] >= 7
    assert result["floor"]["ceiling_entries_per_s"] == pytest.approx(1e6 / us, rel=0.01)
    assert result["share_of_floor_ceiling"] == pytest.approx(
        result["entries_per_s"] / result["floor"]["ceiling_entries_per_s"], abs=0.001)
    hub = result["hub_cpu_us_per_entry"]
    assert hub["total"] == pytest.approx(hub["workers"] + hub["intake"], abs=0.2)
    assert result["hub_cpu_to_floor"] == pytest.approx(hub["total"] / us, abs=0.01)
    assert result["machine_before"]["cpus"] >= 1


def test_the_standard_set_s_summary_sets_each_figure_beside_its_target(
        tmp_path: Path) -> None:
    burst_part = {"share_of_floor_ceiling": 0.4, "hub_cpu_to_floor": 2.5,
                  "duplicates": 0, "lost": 1}
    parts = {"burst_1_worker": burst_part, "burst_2_workers": {**burst_part, "lost": 0,
                                                               "share_of_floor_ceiling": 0.55},
             "floor": {}, "ingest": {"ack_ms": {"p99": 8.5}, "lost": 0}}
    for name, part in parts.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(part))
    summary.main(str(tmp_path), str(tmp_path / "out.json"))
    targets = json.loads((tmp_path / "out.json").read_text())["targets"]
    assert targets["two_workers_share_of_floor_ceiling"]["figure"] == 0.55
    assert targets["one_worker_share_of_floor_ceiling"]["figure"] == 0.4
    assert targets["hub_cpu_to_floor"] == {"target": 2.0, "figure": 2.5}
    assert targets["burst_duplicates_and_lost"]["figure"] == 1
    assert targets["ingest_p99_ms"]["figure"] == 8.5


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


def test_the_floor_replays_what_the_burst_wrote_and_ends_with_the_same_store(
        tmp_path: Path) -> None:
    """`bench floor` times SQLite writing the burst's rows again: each kind of
    replay must leave exactly the rows the burst left (the lifecycle's rows
    first written pending or sent and settled later), and the bare kind no
    secondary index."""
    kept = tmp_path / "burst"
    kept.mkdir()
    figures = burst.run(200, keep=kept)
    assert figures["duplicates"] == 0 and figures["lost"] == 0
    tables = floor.read_store(kept / "hub.db")
    # Each entry leaves its inbox row, two records, its fact, its command, the
    # command's attempt and the ERP's id for it.
    for table in ("inbox", "outbox", "delivery_attempts", "charge_facts", "xref"):
        assert len(tables[table][1]) >= 200, table
    assert len(tables["records"][1]) >= 400
    for kind, (indexes, lifecycle) in floor.KINDS.items():
        path = tmp_path / f"{kind}.db"
        timing = floor.replay(tables, 200, 50, path, indexes=indexes, lifecycle=lifecycle)
        assert timing["cpu_us_per_entry"] > 0 and timing["wall_us_per_entry"] > 0
        again = floor.read_store(path)
        assert again.keys() == tables.keys(), kind
        for table, (columns, rows) in tables.items():
            assert again[table][0] == columns
            assert sorted(again[table][1], key=repr) == sorted(rows, key=repr), (kind, table)
        with sqlite3.connect(path) as conn:
            secondary = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                                     "AND sql IS NOT NULL").fetchone()[0]
        assert (secondary > 0) is indexes, kind


def test_bench_floor_prints_a_ceiling_for_each_kind_of_replay() -> None:
    run = subprocess.run([sys.executable, "-m", "billbridge", "bench", "floor", "--entries",
                          "200", "--runs", "1", "--batch", "50", "--json"],
                         capture_output=True, text=True, timeout=170)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert result["burst"]["duplicates"] == 0 and result["burst"]["lost"] == 0
    assert result["rows_per_entry"]["inbox"] >= 1 and result["rows_per_entry_total"] >= 7
    for kind in floor.KINDS:
        assert len(result["runs"][kind]) == 1
        us = result["median_cpu_us_per_entry"][kind]
        assert result["ceiling_entries_per_s"][kind] == pytest.approx(1e6 / us, rel=1e-3)
    assert result["machine_reference_ms"] > 0
