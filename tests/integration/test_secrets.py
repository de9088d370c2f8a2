"""Connector credentials are encrypted at rest, rotate cleanly and never show."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from billbridge.connectors.base import Connection
from billbridge.engine import audit, secrets

SECRET = "pat-na1-0a1b2c3d-secret-value"


def test_credentials_are_encrypted_at_rest_and_round_trip(engine: Engine) -> None:
    vault = secrets.Vault(secrets.new_key())
    with engine.begin() as conn:
        secrets.save(conn, vault, Connection("crm", "hubspot", "https://api.hubapi.com",
                                             {"token": SECRET}), actor="ops",
                     at=datetime.now(UTC))
    with engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(text("SELECT * FROM connections"))
                        for v in row)
        audit_dump = " ".join(str(v) for row in conn.execute(text("SELECT * FROM audit_log"))
                              for v in row)
        listed = str(secrets.listing(conn))
        loaded = secrets.load(conn, vault, "crm")
        assert audit.verify(conn) == []
    assert SECRET not in dump and SECRET not in audit_dump and SECRET not in listed
    assert loaded.credentials == {"token": SECRET} and loaded.vendor == "hubspot"


def test_rotation_re_encrypts_under_the_new_key_and_rekeys_the_audit_chain(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    old_key, new_key = secrets.new_key(), secrets.new_key()
    old, new = secrets.Vault(old_key), secrets.Vault(new_key)
    monkeypatch.setenv("BILLBRIDGE_SECRET_KEY", old_key.decode())
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for name in ("crm", "erp"):
            secrets.save(conn, old, Connection(name, "generic", "http://x", {"token": name}),
                         actor="ops", at=now)
        assert secrets.rotate(conn, old, new, actor="ops", at=now) == 2
    with engine.connect() as conn:
        assert secrets.load(conn, new, "erp").credentials == {"token": "erp"}
        with pytest.raises(secrets.SecretsError, match="cannot be decrypted"):
            secrets.load(conn, old, "erp")
        assert {r["key_id"] for r in secrets.listing(conn)} == {new.key_id}
        assert [b.row_id for b in audit.verify(conn)] == [1, 2, 3]  # under the old key
        monkeypatch.setenv("BILLBRIDGE_SECRET_KEY", new_key.decode())
        assert audit.verify(conn) == []


def test_a_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BILLBRIDGE_SECRET_KEY", raising=False)
    monkeypatch.delenv("BILLBRIDGE_SECRET_KEY_FILE", raising=False)
    with pytest.raises(secrets.SecretsError, match="set BILLBRIDGE_SECRET_KEY"):
        secrets.load_key()
    with pytest.raises(secrets.SecretsError, match="not a valid Fernet key"):
        secrets.Vault(b"too-short")
