"""A file drop for legacy ERPs whose only interface is a file: customers,
projects, the labour journal and invoices written per batch as CSV or
fixed-width files with a manifest, atomically, into a folder or onto an SFTP
server; the ERP's acknowledgement and status files read back. See
docs/connectors/filedrop.md.

Connection: ``base_url`` is ``sftp://host:port/folder`` or a local folder
(``file:///path`` or a path). Credentials (SFTP): ``username``, ``password``
or ``private_key`` (the key text, its line breaks as ``\\n`` on one line) or
``private_key_path`` (also an option), with ``passphrase`` when the key is
encrypted; ``host_key`` (the server's public key, ``ssh-ed25519 AAAA…``; required).
Options: ``layout`` (``csv`` or ``fixed``), ``batch_size`` (500),
``inbound`` (``in``), ``acks`` (``ack``), ``timeout`` (10 s).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from billbridge.connectors.base import (
    Connection,
    ConnectorSpec,
    Source,
    Target,
)
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.filedrop.client import Drop, LocalDrop, SftpDrop

_CLIENTS: ClientCache[Drop] = ClientCache()


def client_for(connection: Connection) -> Drop:
    """One session per server, user and folder, shared by target and source."""
    url, secrets = connection.base_url, connection.credentials
    parts = urlsplit(url)
    if parts.scheme != "sftp":
        folder = Path(unquote(parts.path) if parts.scheme == "file" else url)
        return _CLIENTS.get((connection.name, str(folder)), lambda: LocalDrop(folder))
    username = str(secrets.get("username") or "")
    root = unquote(parts.path).lstrip("/") or "."
    return _CLIENTS.get((connection.name, url, username), lambda: SftpDrop(
        parts.hostname or "127.0.0.1", parts.port or 22, username=username,
        password=str(secrets.get("password") or ""),
        private_key=_login_key(connection), passphrase=str(secrets.get("passphrase") or ""),
        host_key=str(secrets.get("host_key") or connection.options.get("host_key") or ""),
        root=root, timeout=float(connection.options.get("timeout") or 10.0)))


def _login_key(connection: Connection) -> bytes | Path | None:
    """The log-in key: ``private_key``'s text (a credential line holds no line
    break, so ``\\n`` stands for one), else the file at ``private_key_path``
    (read when the session opens); None for a password log-in."""
    text = str(connection.credentials.get("private_key") or "").strip()
    if text:
        return text.replace("\\n", "\n").encode()
    path = connection.credentials.get("private_key_path") or \
        connection.options.get("private_key_path")
    return Path(str(path)).expanduser() if path else None


def _target(connection: Connection) -> Target:
    from billbridge.connectors.filedrop.target import FileDropTarget

    options = connection.options
    return FileDropTarget(client_for(connection), name=connection.name,
                          layout=str(options.get("layout") or "csv"),
                          max_batch=int(options.get("batch_size") or 500),
                          inbound=str(options.get("inbound") or "in"),
                          acks=str(options.get("acks") or "ack"))


def _source(connection: Connection) -> Source:
    from billbridge.connectors.filedrop.source import FileDropSource
    from billbridge.connectors.filedrop.target import FileDropTarget

    target = _target(connection)
    assert isinstance(target, FileDropTarget)
    return FileDropSource(target, name=connection.name, exports=target.acks)


CONNECTOR = ConnectorSpec("filedrop", source=_source, target=_target)
