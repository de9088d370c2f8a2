"""The emulated file-only time system: exports into a folder."""

from billbridge.connectors.timesheet_files.emulator.exporter import TimesheetExporter

__all__ = ["TimesheetExporter"]
