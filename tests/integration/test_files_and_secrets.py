"""Files at rest and secrets on their way in: the store and key files are
readable by their owner only, credentials never travel on the command line
and never ride inside a URL."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from billbridge.connectors.base import Connection
from billbridge.emulation.tls import self_signed
from billbridge.engine import secrets
from billbridge.store.db import make_engine, migrate


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The umask most shells have (022): files come out 0644 unless we say otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def bb(*args: str, stdin: str = "", env: dict[str, str] | None = None
       ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "billbridge", *args], input=stdin,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, as one line (the terminal wraps long ones)."""
    return " ".join((result.stdout + result.stderr).split())


def test_a_new_sqlite_store_and_its_wal_are_readable_by_their_owner_only(
        tmp_path: Path, loose_umask: None) -> None:
    store = tmp_path / "hub.db"
    engine = make_engine(f"sqlite:///{store}")
    migrate(engine)
    with engine.begin() as conn:  # a write, so the WAL and its index exist
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        assert Path(f"{store}-wal").exists()
        assert mode(store) == 0o600
        assert mode(Path(f"{store}-wal")) == 0o600
        assert mode(Path(f"{store}-shm")) == 0o600
    engine.dispose()


def test_key_files_are_written_readable_by_their_owner_only(tmp_path: Path,
                                                           loose_umask: None) -> None:
    key = tmp_path / "vault.key"
    key.write_bytes(b"an older key")  # an existing, world-readable file is tightened
    assert mode(key) == 0o644
    result = bb("secrets", "new-key", str(key))
    assert result.returncode == 0, result.stdout + result.stderr
    assert mode(key) == 0o600
    secrets.Vault(key.read_bytes())  # a usable key, not the old bytes
    _, tls_key = self_signed(tmp_path / "tls")
    assert mode(Path(tls_key)) == 0o600


def test_credentials_on_the_command_line_are_refused_with_how_to(tmp_path: Path) -> None:
    key = secrets.new_key().decode()
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    refused = bb("secrets", "add", "crm", "hubspot", "https://api.hubapi.com",
                 "--credential", "token=pat-secret", "--database-url", url,
                 env={"BILLBRIDGE_SECRET_KEY": key})
    assert refused.returncode == 2
    assert "--credential -" in said(refused) and "Traceback" not in refused.stderr
    assert len(refused.stdout.strip().splitlines()) <= 2  # one sentence, wrapped at most once
    engine = make_engine(url)
    migrate(engine)
    with engine.connect() as conn:
        assert secrets.listing(conn) == []
    engine.dispose()


def test_credentials_are_read_from_stdin_or_a_file_and_sealed(tmp_path: Path) -> None:
    key = secrets.new_key()
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    env = {"BILLBRIDGE_SECRET_KEY": key.decode()}
    admin = bb("token", "create", "--role", "admin", "--name", "ada", "--database-url", url,
               env=env)
    env["BILLBRIDGE_TOKEN"] = admin.stdout.split()[-1]  # storing a connection is an admin's act
    piped = bb("secrets", "add", "crm", "hubspot", "https://api.hubapi.com", "--credential", "-",
               "--database-url", url, stdin="# HubSpot\ntoken=pat-from-stdin\n\n", env=env)
    assert piped.returncode == 0, piped.stdout + piped.stderr
    creds = tmp_path / "erp.creds"
    creds.write_text("client_id=abc\nclient_secret=s3cr=t\n")
    filed = bb("secrets", "add", "erp", "xero", "https://api.xero.com", "--credential-file",
               str(creds), "--database-url", url, env=env)
    assert filed.returncode == 0, filed.stdout + filed.stderr
    engine = make_engine(url)
    vault = secrets.Vault(key)
    with engine.connect() as conn:
        assert secrets.load(conn, vault, "crm").credentials == {"token": "pat-from-stdin"}
        assert secrets.load(conn, vault, "erp").credentials == {"client_id": "abc",
                                                                "client_secret": "s3cr=t"}
        stored = " ".join(str(v) for row in conn.execute(text("SELECT * FROM connections"))
                          for v in row)
    assert "pat-from-stdin" not in stored and "s3cr=t" not in stored
    engine.dispose()


def test_a_malformed_credential_line_is_named_without_its_value() -> None:
    with pytest.raises(secrets.SecretsError, match="line 2 is not KEY=VALUE") as caught:
        secrets.parse_credentials("token=a\nhunter2\n")
    assert "hunter2" not in str(caught.value)


def test_a_password_inside_a_url_is_refused_and_never_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    env = {"BILLBRIDGE_SECRET_KEY": secrets.new_key().decode()}
    admin = bb("token", "create", "--role", "admin", "--name", "ada", "--database-url", url,
               env=env)
    env["BILLBRIDGE_TOKEN"] = admin.stdout.split()[-1]
    refused = bb("secrets", "add", "erp", "generic", "https://ops:hunter2@erp.example.com",
                 "--database-url", url, env=env)
    assert refused.returncode == 1
    assert "URL carries a user name or password" in said(refused)
    assert "hunter2" not in refused.stdout + refused.stderr and "Traceback" not in refused.stderr
    engine = make_engine(url)
    with engine.connect() as conn:
        everything = " ".join(str(v) for table in ("connections", "audit_log")
                              for row in conn.execute(text(f"SELECT * FROM {table}"))
                              for v in row)
    assert "hunter2" not in everything
    engine.dispose()
    # The same rule for a target given on the command line, and for the engine's own save.
    served = bb("worker", "--target", "ledger=https://ops:hunter2@erp.example.com",
                "--database-url", url, "--idle-exit", "0")
    assert served.returncode != 0 and "URL carries a user name or password" in said(served)
    assert "hunter2" not in served.stdout + served.stderr and "Traceback" not in served.stderr
    with pytest.raises(ValueError, match="URL carries a user name or password"):
        Connection("erp", "generic", "https://ops:hunter2@erp.example.com", {})
    Connection("erp", "generic", "https://erp.example.com/a@b", {})  # an @ in the path is fine
    engine = make_engine(url)
    with engine.begin() as conn, pytest.raises(ValueError):
        secrets.save(conn, secrets.Vault(secrets.new_key()),
                     Connection("erp", "generic", "https://user@erp.example.com"),
                     actor="ops", at=datetime.now(UTC))
    engine.dispose()
