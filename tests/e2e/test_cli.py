"""The command line against real stores and the demo story, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from billbridge.store.db import make_engine


def bb(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "billbridge", *args], capture_output=True,
                            text=True, cwd=cwd, timeout=180)
    if check and result.returncode != 0:
        raise AssertionError(f"billbridge {' '.join(args)} failed:\n{result.stdout}\n"
                             f"{result.stderr}")
    return result


def test_demo_tells_the_slice_and_verifies_it(tmp_path: Path) -> None:
    result = bb("demo", "--no-serve", "--port", "0", "--workdir", str(tmp_path / "demo"))
    out = result.stdout
    assert "slice verified" in out
    assert "NO_RATE" in out and "MALFORMED_PAYLOAD" in out
    assert "1400.00 USD" in out and "1125.00 USD" in out
    url = f"sqlite:///{tmp_path / 'demo' / 'hub.db'}"
    lineage = json.loads(bb("lineage", "te-1", "--database-url", url, "--json").stdout)
    assert [c["status"] for c in lineage["commands"]] == ["done"]
    assert lineage["events"][0]["duplicates"] >= 1  # the webhook copies were dropped


def test_exception_commands_work_the_queue_and_audit_verifies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    events = tmp_path / "events.jsonl"
    events.write_text('{"broken\n{"type": "time_entry.upserted", "id": "x"}\n')
    out = bb("ingest", str(events), "--source", "harvest", "--database-url", url).stdout
    assert out.count("malformed") == 2
    listed = json.loads(bb("exceptions", "list", "--json", "--database-url", url).stdout)
    assert [e["reason"] for e in listed] == ["MALFORMED_PAYLOAD"] * 2
    assert listed[0]["raw"] == '{"broken'
    refused = bb("exceptions", "replay", str(listed[0]["id"]), "--database-url", url,
                 check=False)
    assert refused.returncode == 1 and "malformed" in refused.stdout
    bb("exceptions", "dismiss", str(listed[0]["id"]), str(listed[1]["id"]), "--reason",
       "test data", "--database-url", url, "--actor", "ops")
    assert json.loads(bb("exceptions", "list", "--json", "--database-url", url).stdout) == []
    assert "intact" in bb("audit", "verify", "--database-url", url).stdout

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET detail = '{}' WHERE id = 1"))
    engine.dispose()
    tampered = bb("audit", "verify", "--database-url", url, check=False)
    assert tampered.returncode == 1 and "audit row 1" in tampered.stdout


def test_lineage_of_an_unknown_id_says_so(tmp_path: Path) -> None:
    result = bb("lineage", "nope", "--database-url", f"sqlite:///{tmp_path / 'x.db'}",
                check=False)
    assert result.returncode == 1 and "nothing is known by 'nope'" in result.stdout
