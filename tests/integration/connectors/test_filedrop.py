"""The file drop against the emulated legacy ERP: a local folder in the
fixed-width layout, the ERP's acknowledgements and status export read back
as invoice status, a manifest that does not match refused by the ERP, and an
SFTP server showing another host key refused by the client."""

from __future__ import annotations

from pathlib import Path

import pytest

from billbridge.connectors.base import Malformed, OutboundCommand, PermanentError
from billbridge.connectors.filedrop import mapping
from billbridge.connectors.filedrop.client import LocalDrop, SftpDrop
from billbridge.connectors.filedrop.emulator import LegacyErp, SftpServer
from billbridge.connectors.filedrop.source import FileDropSource
from billbridge.connectors.filedrop.target import FileDropTarget

CUSTOMER = {"id": "cust_1", "name": "Globex LLC", "currency": "USD", "billing_country": "US"}
INVOICE = {"id": "inv_P-1_2026-03-31", "customer": "cust_1", "project": "P-1",
           "currency": "USD", "subtotal": "1400.00", "tax": "0", "total": "1400.00",
           "lines": [{"description": "Alice 8 h", "quantity": "8", "unit_price": "175.00",
                      "amount": "1400.00"}]}


def command(n: int, kind: str, payload: dict[str, object]) -> OutboundCommand:
    return OutboundCommand(n, "filedrop", kind, f"key-{n}", "project:P-1", payload)


def test_fixed_width_files_are_posted_and_read_back_as_issued_then_paid(tmp_path: Path) -> None:
    target = FileDropTarget(LocalDrop(tmp_path), layout="fixed")
    erp = LegacyErp(tmp_path)
    results = target.send([command(1, "customer.upsert", CUSTOMER),
                           command(2, "invoice.create", INVOICE),
                           command(3, "invoice.create", {**INVOICE, "lines": []})])
    assert {r.idempotency_key: r.status.value for r in results} == {
        "key-1": "applied", "key-2": "applied", "key-3": "rejected"}
    assert sorted(p.name for p in (tmp_path / "in").iterdir())[0].endswith(".manifest.csv")
    erp.import_once()
    [posted] = erp.ledger.invoices
    erp.pay(posted.erp_id)

    source = FileDropSource(target)
    pages = list(source.poll(None))
    events = [e for page in pages for e in page.events]
    assert [(e["data"]["invoice"], e["data"]["status"]) for e in events
            if isinstance(e, dict)] == [(INVOICE["id"], "issued"), (INVOICE["id"], "paid")]
    assert list(source.poll(pages[-1].cursor)) == []  # each file is read once


def test_the_erp_refuses_a_file_whose_manifest_does_not_match(tmp_path: Path) -> None:
    target = FileDropTarget(LocalDrop(tmp_path))
    erp = LegacyErp(tmp_path)
    target.send([command(1, "customer.upsert", CUSTOMER)])
    [data] = [p for p in (tmp_path / "in").iterdir() if mapping.is_data_file(p.name)]
    data.write_bytes(data.read_bytes().replace(b"Globex", b"Globez"))  # changed in transit
    erp.import_once()
    assert erp.ledger.customers == {} and data.name in erp.refused
    [page] = FileDropSource(target).poll(None)
    assert [type(e) for e in page.events] == [Malformed]


def test_an_sftp_server_showing_another_host_key_is_refused(tmp_path: Path) -> None:
    with SftpServer(tmp_path, password="pw") as server:
        drop = SftpDrop(server.host, server.port, username="erp", password="pw",
                        host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOtherKeyOther")
        with pytest.raises(PermanentError, match="not the pinned host_key"):
            drop.list("in")
        wrong = SftpDrop(server.host, server.port, username="erp", password="nope",
                         host_key=server.host_key)
        with pytest.raises(PermanentError, match="was refused"):
            wrong.list("in")


def test_billbridge_emulator_run_filedrop_serves_sftp_and_runs_the_import_job() -> None:
    import re
    import subprocess
    import sys
    import time
    from urllib.parse import urlsplit

    process = subprocess.Popen([sys.executable, "-m", "billbridge", "emulator", "run",
                                "filedrop"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = urlsplit(process.stdout.readline().split("listening on ")[1].strip())
        told = re.match(r"SFTP user (\S+), password (\S+), host key (\S+ \S+);",
                        process.stdout.readline())
        assert told is not None and url.port is not None
        drop = SftpDrop("127.0.0.1", url.port, username=told[1], password=told[2],
                        host_key=told[3])
        FileDropTarget(drop).send([command(1, "customer.upsert", CUSTOMER)])
        deadline = time.monotonic() + 20
        while not drop.list("ack") and time.monotonic() < deadline:
            time.sleep(0.05)  # the import job runs every 0.1 s in the emulator's process
        [ack] = drop.list("ack")
        rows = mapping.csv_rows(drop.read(f"ack/{ack}"))
        drop.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert [(r["key"], r["status"], r["erp_id"]) for r in rows] == [
        ("key-1", "POSTED", "cust_1")]


def client_key(passphrase: str | None = None, kind: str = "ssh-ed25519",
               form: str = "openssh") -> tuple[bytes, str]:
    """A private key (its file's bytes) and its public key line."""
    import warnings

    import asyncssh

    key = asyncssh.generate_private_key(kind, comment="billbridge@hub")
    with warnings.catch_warnings():  # few KDF rounds: the default 128 take seconds
        warnings.simplefilter("ignore", UserWarning)
        secret = key.export_private_key(form, passphrase=passphrase, rounds=4)
    return secret, key.export_public_key().decode().strip()


def test_sftp_logs_in_with_a_private_key_from_the_secrets_or_a_key_file(
        tmp_path: Path) -> None:
    from billbridge.connectors.base import Connection
    from billbridge.connectors.filedrop import client_for

    secret, public = client_key(passphrase="horse staple")
    with SftpServer(tmp_path / "erp", authorized_key=public) as server:  # no password at all
        # The key text as a credential line holds it: its line breaks written as \n.
        one_line = secret.decode().strip().replace("\n", "\\n")
        by_text = client_for(Connection("erp-key", "filedrop", server.url,
                                        credentials={"username": "erp", "private_key": one_line,
                                                     "passphrase": "horse staple",
                                                     "host_key": server.host_key}))
        FileDropTarget(by_text).send([command(1, "customer.upsert", CUSTOMER)])
        assert any(n.startswith("BB_CUST_") for n in by_text.list("in"))
        by_text.close()

        pem, pem_public = client_key(kind="ecdsa-sha2-nistp256", form="pkcs8-pem")
        (tmp_path / "id_ecdsa").write_bytes(pem)  # PEM, unencrypted
        server.authorized_key = " ".join(pem_public.split()[:2])
        by_file = client_for(Connection("erp-file", "filedrop", server.url,
                                        credentials={"username": "erp",
                                                     "host_key": server.host_key},
                                        options={"private_key_path": str(tmp_path / "id_ecdsa")}))
        assert any(n.startswith("BB_CUST_") for n in by_file.list("in"))
        by_file.close()
        with pytest.raises(PermanentError, match="was refused; check the username and "
                                                 "password"):
            SftpDrop(server.host, server.port, username="erp", password="guess",
                     host_key=server.host_key).list("in")


def test_a_wrong_private_key_is_one_auth_failure_the_dispatcher_does_not_split(
        tmp_path: Path) -> None:
    from billbridge.engine.dispatch.calls import send

    _, public = client_key()
    other, _ = client_key()
    with SftpServer(tmp_path / "erp", authorized_key=public) as server:
        wrong = SftpDrop(server.host, server.port, username="erp", private_key=other,
                         host_key=server.host_key)
        commands = [command(n, "customer.upsert", {**CUSTOMER, "id": f"cust_{n}"})
                    for n in (1, 2, 3, 4)]
        with pytest.raises(PermanentError) as refused:
            send(FileDropTarget(wrong), commands)  # not split into halves and retried
        assert refused.value.code == "TARGET_AUTH"
        assert str(refused.value) == (f"{server.url}.: user erp was refused; check the "
                                      "username and private key")
        assert server.key_attempts == 1  # offered once, not tried again and again
        assert not (tmp_path / "erp" / "in").exists()

        secret, public = client_key(passphrase="right")
        server.authorized_key = " ".join(public.split()[:2])
        for passphrase, why in (("wrong", "Corrupt data"), ("", "password-protected")):
            locked = SftpDrop(server.host, server.port, username="erp", private_key=secret,
                              passphrase=passphrase, host_key=server.host_key)
            with pytest.raises(PermanentError, match=f"private key cannot be read.*{why}"
                               ) as unreadable:
                locked.list("in")
            assert unreadable.value.code == "TARGET_AUTH" and "\n" not in str(unreadable.value)
