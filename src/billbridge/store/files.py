"""Files that hold the store or a key are created readable and writable by
their owner only (0600), before a byte is written to them: the mode is given
to open(2) itself, so there is no moment when another user could open one."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE = 0o600


def create_private(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True if created.
    An existing file keeps its mode: it may be shared on purpose."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, tightening an existing file's
    mode before the new content goes in."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), PRIVATE)
        out.write(data)
