"""The only code that touches the drop folder: a local (or mounted) folder,
or a folder on an SFTP server reached with paramiko. Both offer the same few
steps: list a folder, read a file, write a file under a temporary name and
rename it into place (so the ERP's import job never sees half a file)."""

from __future__ import annotations

import io
import os
import socket
import threading
from pathlib import Path, PurePosixPath
from typing import Protocol

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from billbridge.connectors.base import PermanentError, RateLimit, TransientError

UNLIMITED = RateLimit(requests=50, per_seconds=1, burst=10)  # a folder has no documented limit


class Drop(Protocol):
    """A drop folder: the ERP's inbound folder, its acknowledgements, its exports."""

    where: str  # for messages: the folder or the server and folder
    writes: int  # files written (renamed into place) so far

    def list(self, folder: str) -> list[str]:
        """The names in ``folder`` (none when it does not exist)."""
        ...

    def read(self, path: str) -> bytes: ...

    def write_temporary(self, folder: str, name: str, data: bytes) -> str:
        """``data`` under a hidden temporary name beside ``name``; its path."""
        ...

    def publish(self, temporary: str, folder: str, name: str) -> None:
        """Rename ``temporary`` to ``folder/name`` (atomic on one file system)."""
        ...

    def close(self) -> None: ...


def temporary_name(name: str) -> str:
    """Hidden and with a suffix no import job picks up."""
    return f".{name}.part"


class LocalDrop:
    """A folder on this machine (or a share mounted here)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)
        self.writes = 0

    def list(self, folder: str) -> list[str]:
        path = self.root / folder
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def write_temporary(self, folder: str, name: str, data: bytes) -> str:
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        path = self.root / folder / temporary_name(name)
        with path.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        return f"{folder}/{path.name}"

    def publish(self, temporary: str, folder: str, name: str) -> None:
        (self.root / temporary).replace(self.root / folder / name)
        self.writes += 1

    def close(self) -> None:
        return None


_CONNECTION_LOST = (paramiko.SSHException, EOFError, socket.error, OSError)


def private_key(data: bytes, passphrase: str = "", *, where: str) -> paramiko.PKey:
    """An Ed25519, ECDSA or RSA private key in OpenSSH or PEM form (PKCS#1,
    PKCS#8, SEC1), decrypted with ``passphrase`` when it is encrypted; a key
    that cannot be read is a ``TARGET_AUTH`` error naming why."""
    password = passphrase.encode() if passphrase else None
    loaded: object
    try:
        try:
            loaded = serialization.load_ssh_private_key(data, password)
        except ValueError:
            if b"OPENSSH PRIVATE KEY" in data:
                raise
            loaded = serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise PermanentError(f"{where}: the private key cannot be read ({exc}); check "
                             "private_key (or private_key_path) and passphrase",
                             code="TARGET_AUTH") from None
    kinds: list[tuple[type, type[paramiko.PKey]]] = [
        (rsa.RSAPrivateKey, paramiko.RSAKey), (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
        (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey)]
    for crypto_kind, kind in kinds:
        if isinstance(loaded, crypto_kind):
            # paramiko reads every kind from the OpenSSH form; it is made here,
            # in memory, never written anywhere.
            text = loaded.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.OpenSSH,
                                        serialization.NoEncryption()).decode()
            return kind.from_private_key(io.StringIO(text))
    raise PermanentError(f"{where}: the private key is a {type(loaded).__name__}; use an "
                         "Ed25519, ECDSA or RSA key", code="TARGET_AUTH")


class SftpDrop:
    """A folder on an SFTP server: one session, opened when first needed and
    again after a drop; every call that loses the connection raises
    ``TransientError`` (the dispatcher sends again; the target's file names
    make that safe). The server's host key is pinned: a server that shows
    another key is refused, as ``ssh`` refuses it. The log-in is by private
    key when ``private_key`` (the key's bytes) is given, else by password;
    the key (or the key file, given its path) is read when a session opens."""

    def __init__(self, host: str, port: int, *, username: str, password: str = "",
                 host_key: str, root: str = ".", timeout: float = 10.0,
                 private_key: bytes | Path | None = None, passphrase: str = "") -> None:
        self.host, self.port, self.username = host, port, username
        self._password = password
        self._private_key, self._passphrase = private_key, passphrase
        self.host_key = host_key.strip()
        self.root = PurePosixPath(root or ".")
        self.timeout = timeout
        self.where = f"sftp://{host}:{port}/{root}"
        self.writes = 0
        self._lock = threading.RLock()
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # -- the session --------------------------------------------------------------
    def _session(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._transport is not None and \
                self._transport.is_active():
            return self._sftp
        self.close()
        if not self.host_key:
            raise PermanentError(f"{self.where}: no host_key given; add the server's public "
                                 "key (as ssh-keyscan prints it) to the connection's options",
                                 code="TARGET_AUTH")
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            transport = paramiko.Transport(sock)
            transport.banner_timeout = transport.auth_timeout = self.timeout
            transport.start_client(timeout=self.timeout)
        except _CONNECTION_LOST as exc:
            raise TransientError(f"{self.where}: cannot connect: {exc}",
                                 code="SFTP_UNREACHABLE") from None
        shown = transport.get_remote_server_key()
        if f"{shown.get_name()} {shown.get_base64()}" != " ".join(self.host_key.split()[:2]):
            transport.close()
            raise PermanentError(f"{self.where} showed host key {shown.get_name()} "
                                 f"{shown.get_base64()[:16]}…, not the pinned host_key; check "
                                 "the server before trusting it", code="TARGET_AUTH")
        try:
            if self._private_key is not None:
                transport.auth_publickey(self.username, self._key())
            else:
                transport.auth_password(self.username, self._password)
        except paramiko.AuthenticationException:
            transport.close()
            by = "private key" if self._private_key is not None else "password"
            raise PermanentError(f"{self.where}: user {self.username} was refused; check the "
                                 f"username and {by}", code="TARGET_AUTH") from None
        except PermanentError:
            transport.close()
            raise
        except _CONNECTION_LOST as exc:
            transport.close()
            raise TransientError(f"{self.where}: lost during log-in: {exc}",
                                 code="SFTP_DISCONNECTED") from None
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        sftp.get_channel().settimeout(self.timeout)  # type: ignore[union-attr]
        self._transport, self._sftp = transport, sftp
        return sftp

    def _key(self) -> paramiko.PKey:
        given = self._private_key
        assert given is not None
        if isinstance(given, Path):
            try:
                return private_key(given.read_bytes(), self._passphrase, where=self.where)
            except OSError as exc:
                raise PermanentError(f"{self.where}: the private key file {given} cannot be "
                                     f"read ({exc.strerror}); check private_key_path",
                                     code="TARGET_AUTH") from None
        return private_key(given, self._passphrase, where=self.where)

    def _path(self, path: str) -> str:
        return str(self.root / path)

    def _lost(self, what: str, exc: BaseException) -> TransientError:
        self.close()
        return TransientError(f"{self.where}: connection lost during {what}: "
                              f"{exc or type(exc).__name__}", code="SFTP_DISCONNECTED")

    # -- the steps ----------------------------------------------------------------------
    def list(self, folder: str) -> list[str]:
        with self._lock:
            try:
                return sorted(self._session().listdir(self._path(folder)))
            except FileNotFoundError:
                return []
            except _CONNECTION_LOST as exc:
                raise self._lost(f"listing {folder}", exc) from None

    def read(self, path: str) -> bytes:
        with self._lock:
            try:
                with self._session().open(self._path(path), "rb") as f:
                    return bytes(f.read())
            except FileNotFoundError:
                raise
            except _CONNECTION_LOST as exc:
                raise self._lost(f"reading {path}", exc) from None

    def _mkdir(self, sftp: paramiko.SFTPClient, folder: str) -> None:
        try:
            sftp.stat(self._path(folder))
        except FileNotFoundError:
            sftp.mkdir(self._path(folder))

    def write_temporary(self, folder: str, name: str, data: bytes) -> str:
        path = f"{folder}/{temporary_name(name)}"
        with self._lock:
            try:
                sftp = self._session()
                self._mkdir(sftp, folder)
                with sftp.open(self._path(path), "wb") as f:
                    f.set_pipelined(True)
                    f.write(data)
                # A cut upload is never published: the server must hold every byte.
                held = sftp.stat(self._path(path)).st_size
                if held != len(data):
                    raise TransientError(f"upload of {name} was cut: the server holds {held} "
                                         f"of {len(data)} bytes; it is sent again",
                                         code="UPLOAD_CUT")
                return path
            except _CONNECTION_LOST as exc:
                raise self._lost(f"upload of {name}", exc) from None

    def publish(self, temporary: str, folder: str, name: str) -> None:
        with self._lock:
            try:
                # posix-rename@openssh.com replaces an existing file; plain SFTP
                # rename refuses to (a same-named file is the same batch).
                self._session().posix_rename(self._path(temporary),
                                             self._path(f"{folder}/{name}"))
                self.writes += 1
            except _CONNECTION_LOST as exc:
                raise self._lost(f"rename of {name}", exc) from None

    def close(self) -> None:
        with self._lock:
            for closing in (self._sftp, self._transport):
                try:
                    if closing is not None:
                        closing.close()
                except Exception:
                    pass
            self._sftp = self._transport = None
