"""One store, said once: a command that reads a store refuses to invent an
empty one (migrate, serve, worker and the first token create it), naming the
store it looked for and what to run; `billbridge status` names the store in
use and what chose it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from billbridge.cli.app import app

CLEAN = {"BILLBRIDGE_DATABASE_URL": None, "BILLBRIDGE_TOKEN": None, "COLUMNS": "300"}


def cli(*args: str, **env: str | None) -> Any:
    return CliRunner().invoke(app, list(args), env={**CLEAN, **env}, catch_exceptions=False)


@pytest.mark.parametrize("command", [["exceptions", "list"], ["lineage", "te-1"],
                                     ["config", "versions"], ["token", "list"],
                                     ["audit", "verify"]])
def test_a_command_that_reads_refuses_a_store_that_is_not_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    said = cli(*command)
    assert said.exit_code == 1
    assert "no store at sqlite:///billbridge.db: billbridge.db does not exist here" in said.output
    assert "`billbridge migrate --database-url sqlite:///billbridge.db`" in said.output
    assert "sqlite:///var/demo/hub.db" in said.output
    assert list(tmp_path.iterdir()) == []  # no empty store left behind


def test_migrate_creates_the_store_and_status_names_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    absent = cli("status")
    assert absent.exit_code == 1 and "no store there yet" in absent.output
    assert cli("migrate").exit_code == 0 and (tmp_path / "billbridge.db").exists()
    seen = cli("status")
    assert seen.exit_code == 0, seen.output
    assert "store: sqlite:///billbridge.db (chosen by the default)" in seen.output
    assert "open exceptions: 0" in seen.output
    assert cli("exceptions", "list").exit_code == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    named = cli("status", BILLBRIDGE_DATABASE_URL=other)
    assert f"store: {other} (chosen by BILLBRIDGE_DATABASE_URL)" in named.output


def test_a_postgresql_database_without_the_schema_is_refused_not_filled(pg_url: str) -> None:
    said = cli("lineage", "te-1", "--database-url", pg_url)
    assert said.exit_code == 1 and "the database holds no billbridge store" in said.output
    assert "no store there yet" in cli("status", "--database-url", pg_url).output
    assert cli("migrate", "--database-url", pg_url).exit_code == 0
    assert "schema: " in cli("status", "--database-url", pg_url).output
