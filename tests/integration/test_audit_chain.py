"""The audit log is keyed and anchored: `billbridge audit verify` names the row
after an edit, a deleted row in the middle, the last rows cut off, or an edit
with the chain recomputed by someone without the hub's key; an untouched store
verifies against its checkpoint."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text, update
from typer.testing import CliRunner

from billbridge.cli.app import app
from billbridge.engine import audit, tokens
from billbridge.store.db import make_engine, migrate
from billbridge.store.tables import audit_log

runner = CliRunner()


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> tuple[str, Path, Engine]:
    """Six audited actions, then a checkpoint written by the command."""
    engine = make_engine(db_url)
    migrate(engine)
    at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    with engine.begin() as conn:
        for n in range(1, 7):
            audit.record(conn, at=at + timedelta(minutes=n), actor=f"user-{n}",
                         action="config.propose", subject=f"config:{n}", detail={"n": n})
    checkpoints = tmp_path / "audit-checkpoints"
    done = bb("checkpoint", db_url, checkpoints)
    assert done.exit_code == 0, done.output
    return db_url, checkpoints, engine


def bb(command: str, url: str, checkpoints: Path) -> object:
    return runner.invoke(app, ["audit", command, "--database-url", url,
                               "--checkpoint-file", str(checkpoints)])


def verify(url: str, checkpoints: Path) -> tuple[int, list[str]]:
    result = runner.invoke(app, ["audit", "verify", "--database-url", url,
                                 "--checkpoint-file", str(checkpoints)])
    # One message per row named (the console wraps long ones).
    said = " ".join(result.output.split())
    return result.exit_code, [m.strip() for m in re.split(r"(?=audit row \d+:)", said) if m]


def rechain_from(engine: Engine, first: int, mac: Callable[[bytes], str]) -> None:
    """What someone with write access to the store, but not the key, can do:
    chain every row from ``first`` on again with ``mac``."""
    with engine.begin() as conn:
        rows = list(conn.execute(select(audit_log).order_by(audit_log.c.id)))
        prev = next((r.hash for r in reversed(rows) if r.id < first), audit.GENESIS)
        for row in (r for r in rows if r.id >= first):
            digest = mac(audit._material(prev, row.at, row.actor, row.action, row.subject,
                                         row.detail, row.correlation_id))
            conn.execute(update(audit_log).where(audit_log.c.id == row.id)
                         .values(prev_hash=prev, hash=digest))
            prev = digest


def test_an_untouched_store_verifies_against_its_checkpoint(
        store: tuple[str, Path, Engine]) -> None:
    url, checkpoints, _ = store
    code, lines = verify(url, checkpoints)
    assert code == 0, lines
    assert "audit log intact, and it reaches its checkpoint" in lines[0]
    assert "(row 6, 6 rows)" in " ".join(lines)


def test_an_edited_row_is_named(store: tuple[str, Path, Engine]) -> None:
    url, checkpoints, engine = store
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = 3"))
    code, lines = verify(url, checkpoints)
    assert code == 1
    assert lines[0].startswith("audit row 3: its content does not match its HMAC"), lines


def test_a_deleted_middle_row_is_named(store: tuple[str, Path, Engine]) -> None:
    url, checkpoints, engine = store
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = 3"))
    code, lines = verify(url, checkpoints)
    assert code == 1
    assert lines[0] == "audit row 4: a row before it was deleted or altered", lines


def test_deleting_the_last_rows_is_caught_by_the_checkpoint(
        store: tuple[str, Path, Engine]) -> None:
    url, checkpoints, engine = store
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id >= 5"))
    code, lines = verify(url, checkpoints)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("audit row 6: is gone"), lines
    assert "the store ends at row 4" in lines[0]


@pytest.mark.parametrize("mac", [
    pytest.param(lambda m: hashlib.sha256(m).hexdigest(), id="unkeyed, as the chain once was"),
    pytest.param(lambda m: hmac.new(b"a guess", m, hashlib.sha256).hexdigest(),
                 id="keyed with a guess"),
])
def test_an_edit_with_the_chain_recomputed_is_named(
        store: tuple[str, Path, Engine], mac: Callable[[bytes], str]) -> None:
    url, checkpoints, engine = store
    with engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == 3).values(detail='{"n":30}'))
    rechain_from(engine, 3, mac)
    code, lines = verify(url, checkpoints)
    assert code == 1
    assert lines[0].startswith("audit row 3: "), lines
    assert {line.split(":")[0] for line in lines} >= {"audit row 3", "audit row 6"}


def test_a_checkpoint_written_without_the_key_is_refused(
        store: tuple[str, Path, Engine]) -> None:
    url, checkpoints, engine = store
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id >= 5"))
        row_id, head, count = audit.head(conn)
        store_name = audit.store_name(conn)
    forged = (f'{{"store": "{store_name}", "at": "2026-03-02T00:00:00+00:00", '
              f'"row_id": {row_id}, "count": {count}, "head": "{head}", "mac": "{"0" * 64}"}}')
    checkpoints.write_text(checkpoints.read_text() + forged + "\n")
    code, lines = verify(url, checkpoints)
    assert code == 1 and "is not signed with this hub's key" in lines[0], lines


def test_a_store_from_before_keyed_audit_is_rekeyed_once_by_an_admin(
        db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    with engine.begin() as conn:
        _, admin = tokens.create_first(conn, name="ada", expires_in=timedelta(hours=1),
                                       at=datetime.now(UTC))
    rechain_from(engine, 1, lambda m: hashlib.sha256(m).hexdigest())  # as stores were
    checkpoints = tmp_path / "audit-checkpoints"
    code, lines = verify(db_url, checkpoints)
    assert code == 1 and "chained without a key" in lines[0] and "audit rekey" in lines[0]

    refused = runner.invoke(app, ["audit", "rekey", "--database-url", db_url])
    assert refused.exit_code == 2 and "needs your token" in refused.output
    rekey = ["audit", "rekey", "--database-url", db_url, "--checkpoint-file", str(checkpoints)]
    done = runner.invoke(app, rekey, env={"BILLBRIDGE_TOKEN": admin})
    assert done.exit_code == 0, done.output
    assert verify(db_url, checkpoints)[0] == 0
    with engine.connect() as conn:
        assert next(r["actor"] for r in audit.entries(conn)) == "ada"
    again = runner.invoke(app, rekey, env={"BILLBRIDGE_TOKEN": admin})
    assert again.exit_code == 1 and "nothing to rekey" in again.output
