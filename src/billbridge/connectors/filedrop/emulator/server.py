"""The whole emulated legacy ERP as one thing to start: its SFTP server in
front of its folder, and its import job running every ``interval`` seconds
(`billbridge emulator run filedrop`, the demo)."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from billbridge.connectors.filedrop.emulator.erp import LegacyErp
from billbridge.connectors.filedrop.emulator.sftp import SftpServer
from billbridge.emulation.faults import FaultInjector


class FileDropEmulator:
    def __init__(self, folder: Path | None = None, *, port: int = 0, username: str = "erp",
                 password: str | None = None, interval: float = 0.1) -> None:
        self.folder = folder or Path(tempfile.mkdtemp(prefix="filedrop-"))
        self.password = password or secrets.token_urlsafe(18)
        self.sftp = SftpServer(self.folder, username=username, password=self.password,
                               port=port)
        self.erp = LegacyErp(self.folder, interval=interval)
        self.username = username

    @property
    def url(self) -> str:
        return self.sftp.url

    @property
    def faults(self) -> FaultInjector:
        return self.sftp.faults

    @property
    def host_key(self) -> str:
        return self.sftp.host_key

    def describe(self) -> str:
        """What a person needs to connect, for `billbridge emulator run`."""
        return (f"SFTP user {self.username}, password {self.password}, host key "
                f"{self.host_key}; the ERP's folder is {self.folder} (drop files in in/, "
                "acknowledgements in ack/)")

    def start(self) -> FileDropEmulator:
        self.sftp.start()
        self.erp.start()
        return self

    def stop(self) -> None:
        self.erp.stop()
        self.sftp.stop()
