"""Timesheet and expense files (CSV, XLSX) as a time source: the interface of
legacy time systems and spreadsheet exports. A folder is watched; files
dropped there (by an export job, an SFTP mirror, or an upload) are read once,
row by row, bad rows kept with their line number and raw text. See
docs/connectors/timesheet-files.md."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from billbridge.connectors.base import Connection, ConnectorSpec, Source


def folder_of(connection: Connection) -> Path:
    """The watched folder: the connection's URL, ``file:///path`` or a path."""
    url = connection.base_url
    if url.startswith("file:"):
        return Path(unquote(urlparse(url).path))
    return Path(url)


def _source(connection: Connection) -> Source:
    from billbridge.connectors.timesheet_files.client import TimesheetFolder
    from billbridge.connectors.timesheet_files.source import FileSource

    return FileSource(TimesheetFolder(folder_of(connection)), name=connection.name,
                      options=connection.options,
                      page_size=int(connection.options.get("page_size", 500)))


CONNECTOR = ConnectorSpec("csv", source=_source)
