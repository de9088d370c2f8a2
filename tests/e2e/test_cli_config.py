"""`billbridge config show` and `config validate` as a user runs them
(a subprocess on a real store): the version's document as YAML with who
proposed and approved it, --json, one line for a version that is not there;
a configuration that parses but cannot price what it names is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from billbridge.engine import config_store
from conftest import CONFIG

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def bb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "billbridge", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=180, env={**os.environ, "COLUMNS": "200"})


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def with_rate(role: str, rate: str) -> dict[str, Any]:
    card = {**CONFIG["rate_cards"][0], "rates": {**CONFIG["rate_cards"][0]["rates"], role: rate}}
    return {**CONFIG, "rate_cards": [card]}


@pytest.fixture
def versions(engine: Engine) -> Engine:
    """v1 (superseded), v2 proposed by paul and approved by ada (active), v3
    proposed by paul and waiting."""
    with engine.begin() as conn:
        config_store.activate(conn, CONFIG, actor="bootstrap", at=AT, note="initial")
        v2 = config_store.propose(conn, with_rate("designer", "120.00"), actor="paul", at=AT,
                                  note="designer rate")
        config_store.approve(conn, v2, actor="ada", at=AT.replace(hour=11))
        config_store.propose(conn, with_rate("designer", "130.00"), actor="paul",
                             at=AT.replace(hour=12))
    return engine


def test_config_show_prints_the_active_version_as_yaml_with_who_and_when(
        versions: Engine) -> None:
    shown = bb("config", "show", "--database-url", url_of(versions))
    assert shown.returncode == 0, shown.stderr
    head = [line for line in shown.stdout.splitlines() if line.startswith("#")]
    assert head == ["# configuration version 2 (active)",
                    "# proposed by paul at 2026-03-02 09:30 UTC",
                    "# approved by ada at 2026-03-02 11:30 UTC",
                    "# note: designer rate"]
    document = yaml.safe_load(shown.stdout)
    assert document["rate_cards"][0]["rates"]["designer"] == "120.00"
    with versions.connect() as conn:
        assert document == config_store.document(conn, 2)


def test_config_show_of_a_given_version_and_as_json(versions: Engine) -> None:
    url = url_of(versions)
    waiting = bb("config", "show", "3", "--database-url", url)
    assert waiting.returncode == 0, waiting.stderr
    assert waiting.stdout.startswith("# configuration version 3 (proposed)\n"
                                     "# proposed by paul at 2026-03-02 12:30 UTC\n"
                                     "# not yet approved\n")
    assert yaml.safe_load(waiting.stdout)["rate_cards"][0]["rates"]["designer"] == "130.00"
    first = bb("config", "show", "1", "--database-url", url)
    assert "# configuration version 1 (superseded)" in first.stdout
    assert "designer" not in yaml.safe_load(first.stdout)["rate_cards"][0]["rates"]

    as_json = bb("config", "show", "2", "--json", "--database-url", url)
    assert as_json.returncode == 0, as_json.stderr
    shown = json.loads(as_json.stdout)
    assert (shown["version"], shown["status"], shown["proposed_by"], shown["approved_by"]) == (
        2, "active", "paul", "ada")
    assert shown["activated_at"] == "2026-03-02T11:30:00+00:00"
    assert shown["document"]["rate_cards"][0]["rates"]["designer"] == "120.00"


def test_the_shown_yaml_is_a_configuration_validate_accepts(versions: Engine,
                                                           tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "config.yaml").write_text(
        bb("config", "show", "--database-url", url_of(versions)).stdout)
    checked = bb("config", "validate", str(folder))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "valid" in checked.stdout


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_an_unknown_version_or_none_active_is_one_line(engine: Engine) -> None:
    url = url_of(engine)
    for args, said in [(("config", "show"), "no configuration is active yet"),
                       (("config", "show", "9", "--json"),
                        "there is no configuration version 9")]:
        refused = bb(*args, "--database-url", url)
        assert refused.returncode == 1, refused.stdout
        assert refused.stdout == ""
        assert said in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, \
            refused.stderr
        # A refusal the user can act on, not the boundary's "unexpected error".
        assert "Traceback" not in refused.stderr and "unexpected" not in refused.stderr


@pytest.mark.parametrize(("text", "code", "said"), [
    ("", 1, "error: configuration: it is empty"),
    ("rate_cards:\n  - {id: rc, version: 1, currency: USD, effective_from: 2026-01-01,\n"
     "     rates: {consultant: '150.00'}, worker_overrides: {w-alcie: '175.00'}}\n", 1,
     "error: rate card rc version 1: overrides the rate of worker 'w-alcie'"),
    ("workers:\n  - {id: w-carol, name: Carol, role: designer, legal_entity: US01,\n"
     "     cost_rate: '60.00', currency: USD}\n"
     "rate_cards:\n  - {id: rc, version: 1, currency: USD, effective_from: 2026-01-01,\n"
     "     rates: {consultant: '150.00'}}\n", 0,
     "warning: worker w-carol: role 'designer' has no rate in any rate card"),
], ids=["empty file", "override on an unknown worker", "a role no card rates"])
def test_config_validate_names_what_cannot_price(tmp_path: Path, text: str, code: int,
                                                 said: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    checked = bb("config", "validate", str(path))
    assert checked.returncode == code, checked.stdout + checked.stderr
    said_where = checked.stderr if code else checked.stdout
    assert said in " ".join(said_where.split()), (checked.stdout, checked.stderr)
    assert ("valid" in checked.stdout) == (code == 0)
    assert "Traceback" not in checked.stderr
