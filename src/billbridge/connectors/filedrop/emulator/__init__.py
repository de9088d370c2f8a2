"""The legacy ERP behind the drop folder, and an SFTP server in front of it."""

from billbridge.connectors.filedrop.emulator.erp import LegacyErp
from billbridge.connectors.filedrop.emulator.server import FileDropEmulator
from billbridge.connectors.filedrop.emulator.sftp import SftpServer

__all__ = ["FileDropEmulator", "LegacyErp", "SftpServer"]

RUN = FileDropEmulator
"""What `billbridge emulator run filedrop` starts (no HTTP server here)."""
