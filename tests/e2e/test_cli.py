"""The command line against real stores and the demo story, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from billbridge.demo.story import LINEAGE_EXAMPLE
from billbridge.store.db import make_engine


def bb(*args: str, cwd: Path | None = None, check: bool = True,
       token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BILLBRIDGE_TOKEN": token} if token else None
    result = subprocess.run([sys.executable, "-m", "billbridge", *args], capture_output=True,
                            text=True, cwd=cwd, timeout=180, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"billbridge {' '.join(args)} failed:\n{result.stdout}\n"
                             f"{result.stderr}")
    return result


def test_demo_tells_the_quote_to_cash_story_and_verifies_it(tmp_path: Path) -> None:
    result = bb("demo", "--no-serve", "--port", "0", "--workdir", str(tmp_path / "demo"))
    out = result.stdout
    assert "story verified" in out
    assert "NO_RATE" in out and "MALFORMED_PAYLOAD" in out
    assert "2525.00 USD" in out and "700.00 USD" in out  # GLX-001 and NEW-002 invoices
    assert "invoice_status=paid" in out and "duplicates: 0" in out
    url = f"sqlite:///{tmp_path / 'demo' / 'hub.db'}"
    lineage = json.loads(bb("lineage", LINEAGE_EXAMPLE, "--database-url", url,
                            "--json").stdout)
    [source] = lineage["root"]["up"]
    assert int(source["facts"]["repeats dropped"]) >= 1  # the overlapping re-poll's copy
    [charge] = lineage["root"]["down"]
    assert [p["status"] for p in charge["down"] if p["kind"] == "posting"] == ["done"]


def test_exception_commands_work_the_queue_and_audit_verifies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    events = tmp_path / "events.jsonl"
    events.write_text('{"broken\n{"type": "time_entry.upserted", "id": "x"}\n')
    admin = bb("token", "create", "--role", "admin", "--name", "ada", "--database-url",
               url).stdout.split()[-1]
    out = bb("ingest", str(events), "--source", "harvest", "--database-url", url,
             token=admin).stdout
    assert out.count("malformed") == 2
    listed = json.loads(bb("exceptions", "list", "--json", "--database-url", url).stdout)
    assert [e["reason"] for e in listed] == ["MALFORMED_PAYLOAD"] * 2
    assert listed[0]["raw"] == '{"broken'
    refused = bb("exceptions", "replay", str(listed[0]["id"]), "--database-url", url,
                 check=False, token=admin)
    assert refused.returncode == 1 and "malformed" in refused.stdout
    bb("exceptions", "dismiss", str(listed[0]["id"]), str(listed[1]["id"]), "--note",
       "test data", "--database-url", url, token=admin)
    assert json.loads(bb("exceptions", "list", "--json", "--database-url", url).stdout) == []
    assert "intact" in bb("audit", "verify", "--database-url", url).stdout

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET detail = '{}' WHERE id = 1"))
    engine.dispose()
    tampered = bb("audit", "verify", "--database-url", url, check=False)
    assert tampered.returncode == 1 and "audit row 1" in tampered.stdout


def test_lineage_of_an_unknown_id_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    bb("migrate", "--database-url", url)
    result = bb("lineage", "nope", "--database-url", url, check=False)
    # A refusal is one line on stderr, no traceback.
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("nothing is known by 'nope'")
    assert result.stderr.count("\n") == 1


def test_serve_runs_the_hub_with_health_metrics_and_the_slice(tmp_path: Path) -> None:
    import socket
    import time

    import httpx

    from billbridge.connectors.generic.emulator import LedgerEmulator, TimeSourceEmulator

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Path(__file__).parents[2] / "src" / "billbridge" / "demo" / "config.yaml"
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    with LedgerEmulator(token="ledger-token") as ledger, TimeSourceEmulator() as source:
        source.upsert({"id": "te-1", "worker": "w-bob", "project": "GLX-001", "task": "dev",  # type: ignore[attr-defined]
                       "work_date": "2026-03-02", "hours": "2", "billable": True,
                       "notes": "", "status": "approved"})
        server = subprocess.Popen(
            [sys.executable, "-m", "billbridge", "serve", "--database-url", url, "--port",
             str(port), "--target", f"ledger={ledger.url}",  # type: ignore[attr-defined]
             "--source", f"generic={source.url}", "--config", str(config),  # type: ignore[attr-defined]
             "--open-metrics"],
            env={**os.environ, "BILLBRIDGE_WEBHOOK_SECRET": "e2e-secret"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            health = None
            while time.monotonic() < deadline:
                try:
                    health = httpx.get(f"{base}/healthz").json()
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert health == {"status": "ok", "database": "sqlite"}
            events = tmp_path / "project.json"
            events.write_text(json.dumps({
                "type": "project.updated", "id": "p1", "at": "2026-03-01T09:00:00Z",
                "data": {"code": "GLX-001", "name": "Globex", "status": "active"}}))
            admin = bb("token", "create", "--role", "admin", "--name", "ada",
                       "--database-url", url).stdout.strip().splitlines()[-1]
            bb("ingest", str(events), "--source", "psa", "--database-url", url, token=admin)
            while time.monotonic() < deadline and len(ledger.effects) < 2:
                time.sleep(0.2)
            metrics = httpx.get(f"{base}/metrics").text
        finally:
            server.terminate()
            server.wait(timeout=20)
    assert [e["kind"] for e in ledger.effects] == ["project.upsert", "time_charge.post"]
    assert ledger.effects[1]["data"]["amount"] == "300.00"
    assert 'billbridge_postings_confirmed_total{kind="time_charge.post",target="ledger"} 1.0' \
        in metrics


def test_a_start_flag_cannot_change_an_active_configuration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    config = Path(__file__).parents[2] / "src" / "billbridge" / "demo" / "config.yaml"
    changed = tmp_path / "changed.yaml"
    changed.write_text(config.read_text().replace('consultant: "150.00"', 'consultant: "1.00"'))
    common = ["--database-url", url, "--idle-exit", "0.2"]
    bb("worker", "--config", str(config), *common)
    bb("worker", "--config", str(config), *common)  # the same document again is fine
    refused = bb("worker", "--config", str(changed), *common, check=False)
    assert refused.returncode == 2
    assert "billbridge config propose" in " ".join(refused.stdout.split())


def test_any_registered_vendor_emulator_runs_from_the_cli() -> None:
    import httpx

    process = subprocess.Popen([sys.executable, "-m", "billbridge", "emulator", "run", "generic",
                                "--kind", "ledger"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split("listening on ")[1].strip()
        assert httpx.get(f"{url}/_emulator/effects").json() == []
    finally:
        process.terminate()
        process.wait(timeout=10)
    ambiguous = bb("emulator", "run", "generic", check=False)
    assert ambiguous.returncode == 2 and "--kind" in ambiguous.stderr + ambiguous.stdout
