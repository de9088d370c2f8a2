"""Four-eyes on the command line: every change is made as the identity of a
token, through the API's role check and maker-checker, never as $USER; no
token, no change; an empty or unchanged proposal is refused with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from billbridge.cli.app import app
from billbridge.engine import config_store, tokens
from billbridge.engine.tokens import Role
from billbridge.store.db import make_engine, migrate
from conftest import CONFIG

runner = CliRunner()


@pytest.fixture
def store(db_url: str) -> tuple[str, Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    with engine.begin() as conn:
        config_store.activate(conn, CONFIG, actor="bootstrap", at=datetime.now(UTC))
    return db_url, engine


def token(engine: Engine, role: Role, name: str) -> str:
    with engine.begin() as conn:
        _, made = tokens.create(conn, name=name, role=role, expires_in=timedelta(hours=1),
                                actor="test", at=datetime.now(UTC))
    return made


def bb(url: str, *args: str, token: str | None = None) -> tuple[int, str]:
    env = {"USER": None, "BILLBRIDGE_TOKEN": token}  # no $USER, as in containers and cron
    result = runner.invoke(app, [*args, "--database-url", url], env=env)
    return result.exit_code, " ".join(result.output.split())


def document(tmp_path: Path, content: dict[str, object], name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return str(path)


def raised_rate() -> dict[str, object]:
    card = {**CONFIG["rate_cards"][0], "rates": {"consultant": "160.00"}}
    return {**CONFIG, "rate_cards": [card]}


def test_one_shell_cannot_propose_and_approve_its_own_change(
        store: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = store
    change = document(tmp_path, raised_rate())

    code, said = bb(url, "config", "propose", change)
    assert code == 2 and "needs your token: set BILLBRIDGE_TOKEN" in said
    code, said = bb(url, "config", "approve", "2")
    assert code == 2 and "needs your token" in said

    paul, fiona = token(engine, Role.FINANCE, "paul"), token(engine, Role.FINANCE, "fiona")
    code, said = bb(url, "config", "propose", change, token=paul)
    assert code == 0 and "proposed as version 2" in said
    code, said = bb(url, "config", "approve", "2", token=paul)
    assert code == 1 and "paul proposed version 2 and cannot also approve it" in said
    with engine.connect() as conn:
        assert config_store.active_version(conn) == 1

    code, said = bb(url, "config", "approve", "2", token=fiona)
    assert code == 0, said
    with engine.connect() as conn:
        [active] = [v for v in config_store.versions(conn) if v["status"] == "active"]
    assert (active["version"], active["proposed_by"], active["approved_by"]) == \
        (2, "paul", "fiona")


def test_approving_a_version_that_does_not_exist_says_so_in_one_line(
        store: tuple[str, Engine]) -> None:
    url, engine = store
    fiona = token(engine, Role.FINANCE, "fiona")
    result = runner.invoke(app, ["config", "approve", "99", "--database-url", url],
                           env={"USER": None, "BILLBRIDGE_TOKEN": fiona})
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == "there is no configuration version 99"
    assert result.stdout == ""
    code, said = bb(url, "config", "approve", "1", token=fiona)
    assert code == 1 and said == "version 1 is active, not proposed"


def test_a_role_that_may_not_is_refused_like_in_the_api(store: tuple[str, Engine],
                                                       tmp_path: Path) -> None:
    url, engine = store
    olga = token(engine, Role.OPERATOR, "olga")
    code, said = bb(url, "config", "propose", document(tmp_path, raised_rate()), token=olga)
    assert code == 2 and "olga: role operator may not config.propose" in said
    code, said = bb(url, "exceptions", "dismiss", "1", "--note", "noise",
                    token=token(engine, Role.AUDITOR, "audrey"))
    assert code == 2 and "role auditor may not act" in said
    code, said = bb(url, "config", "approve", "1", token="bb_forged")
    assert code == 2 and "the token is refused: unknown token" in said


def test_an_empty_or_unchanged_proposal_is_refused_with_a_reason(
        store: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = store
    paul = token(engine, Role.FINANCE, "paul")
    code, said = bb(url, "config", "propose", document(tmp_path, {}, "empty.yaml"), token=paul)
    assert code == 1 and "the proposed configuration is empty" in said
    code, said = bb(url, "config", "propose", document(tmp_path, CONFIG), token=paul)
    assert code == 1 and "identical to the active version 1: there is nothing to approve" in said
    with engine.connect() as conn:
        assert [v["version"] for v in config_store.versions(conn)] == [1]


def test_the_first_admin_token_needs_none_and_every_later_one_does(
        db_url: str) -> None:
    first = ["token", "create", "--role", "admin", "--name", "ada"]
    code, said = bb(db_url, *first)
    assert code == 0, said
    ada = said.split()[-1]
    code, said = bb(db_url, "token", "create", "--role", "admin", "--name", "eve")
    assert code == 2 and "this store has tokens already" in said
    code, said = bb(db_url, "token", "create", "--role", "finance", "--name", "paul",
                    token=ada)
    assert code == 0 and "token 2 for paul (finance)" in said
    code, said = bb(db_url, "token", "revoke", "1", token=said.split()[-1])
    assert code == 2 and "role finance may not administer" in said
