"""An SFTP server on 127.0.0.1 for the tests and the demo (asyncssh's server
side, in a thread of its own), rooted in the legacy ERP's folder, with log-in
by password or by a configured public key, and faults on the writes: a
dropped connection half way through an upload, a rename applied whose answer
never arrives."""

from __future__ import annotations

import asyncio
import hmac
import threading
from pathlib import Path
from typing import Any

import asyncssh

from billbridge.emulation.faults import Fault, FaultInjector

WRITE = 0x02  # SSH_FXF_WRITE


class _Door(asyncssh.SSHServer):
    def __init__(self, server: SftpServer) -> None:
        self.server = server

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return bool(self.server.password)

    def validate_password(self, username: str, password: str) -> bool:
        return (hmac.compare_digest(username, self.server.username)
                and hmac.compare_digest(password, self.server.password))

    def public_key_auth_supported(self) -> bool:
        return bool(self.server.authorized_key)

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        self.server.key_attempts += 1
        offered = " ".join(key.export_public_key().decode().split()[:2])
        return (hmac.compare_digest(username, self.server.username)
                and hmac.compare_digest(offered, self.server.authorized_key))


class _FaultySftp(asyncssh.SFTPServer):
    """Plain file access under the root, until the fault injector says otherwise."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], *, root: Path,
                 faults: FaultInjector) -> None:
        super().__init__(chan, chroot=str(root).encode())
        self.faults = faults
        self._doomed: dict[int, Fault] = {}  # open files whose upload a fault ends

    def _drop_connection(self) -> None:
        self.channel.get_extra_info("connection").abort()

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> Any:
        file = super().open(path, pflags, attrs)
        if pflags & WRITE:
            rule = self.faults.next_rule("write", "/" + path.decode().lstrip("/"))
            if rule.fault in (Fault.SERVER_ERROR, Fault.LOST_ACK):
                self._doomed[id(file)] = rule.fault
        return file

    def write(self, file_obj: object, offset: int, data: bytes) -> Any:
        fault = self._doomed.pop(id(file_obj), None)
        if fault is Fault.SERVER_ERROR:  # the connection drops half way through the upload
            super().write(file_obj, offset, data[: len(data) // 2])
            file_obj.flush()  # type: ignore[attr-defined]
            self._drop_connection()
            return None
        super().write(file_obj, offset, data)
        # Unbuffered, as a server's write is: bytes of a dropped session must not
        # land later, in a file another session has since renamed into place.
        file_obj.flush()  # type: ignore[attr-defined]
        if fault is Fault.LOST_ACK:  # written, and the answer lost with the connection
            self._drop_connection()
        return None

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> Any:
        rule = self.faults.next_rule("rename", "/" + newpath.decode().lstrip("/"))
        if rule.fault is Fault.SERVER_ERROR:
            self._drop_connection()
            return None
        super().posix_rename(oldpath, newpath)
        if rule.fault is Fault.LOST_ACK:
            self._drop_connection()
        return None


class SftpServer:
    """``start()`` serves ``root`` on 127.0.0.1 (a free port unless given);
    ``host_key`` is its public key, for the client's pinning. The user logs
    in with ``password``, or with the private key of ``authorized_key`` (a
    public key as ``ssh-keygen`` writes it, ``ssh-ed25519 AAAA… comment``);
    ``key_attempts`` counts the keys offered to it."""

    def __init__(self, root: Path, *, username: str = "erp", password: str = "",
                 authorized_key: str = "", host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = root
        self.username, self.password = username, password
        self.authorized_key = " ".join(authorized_key.split()[:2])
        self.key_attempts = 0
        self.host, self.port = host, port
        self.faults = FaultInjector()
        self._key = asyncssh.generate_private_key("ssh-ed25519")
        self.host_key = self._key.export_public_key().decode().split()[0] + " " + \
            self._key.export_public_key().decode().split()[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"sftp://{self.host}:{self.port}/"

    def start(self) -> SftpServer:
        self.root.mkdir(parents=True, exist_ok=True)
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncssh.listen(
                    self.host, self.port, server_host_keys=[self._key],
                    server_factory=lambda: _Door(self),
                    sftp_factory=lambda chan: _FaultySftp(chan, root=self.root,
                                                          faults=self.faults),
                    allow_scp=False))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            self._server.close()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="sftp-emulator", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> SftpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
