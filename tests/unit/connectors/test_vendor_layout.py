"""The shape of a vendor folder (docs/connectors.md, "Adding a vendor"): the
client side at the top, the emulator in its own ``emulator/`` package, and no
client-side module that imports the emulator, so the emulator can be left out
of a deployment without breaking the connector."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import billbridge.connectors
from billbridge.emulation.server import EmulatorServer

ROOT = Path(billbridge.connectors.__file__).parent
VENDORS = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())
FILE_VENDORS = {"timesheet_files": "TimesheetExporter", "filedrop": "LegacyErp"}
"""Vendors whose system has no API but a file: their emulator is what writes
or imports the files (an export job, an ERP's import job), not an HTTP server."""


def _imports(path: Path, package: str) -> set[str]:
    """Every module a file imports, relative imports resolved against ``package``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_vendor_folders_are_found() -> None:
    assert {"generic", "hubspot", "netsuite", "xero"} <= set(VENDORS)


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_vendors_emulator_is_a_package_beside_its_client(vendor: str) -> None:
    folder = ROOT / vendor
    assert not (folder / "emulator.py").exists(), (
        f"connectors/{vendor}/emulator.py: move it to connectors/{vendor}/emulator/server.py "
        "and export its class from emulator/__init__.py")
    assert (folder / "emulator" / "__init__.py").is_file(), (
        f"connectors/{vendor}/ has no emulator/ package")
    module = importlib.import_module(f"billbridge.connectors.{vendor}.emulator")
    exported = [getattr(module, name) for name in module.__all__]
    if vendor in FILE_VENDORS:
        assert FILE_VENDORS[vendor] in module.__all__
        return
    assert any(isinstance(obj, type) and issubclass(obj, EmulatorServer) for obj in exported), (
        f"billbridge.connectors.{vendor}.emulator exports no EmulatorServer subclass")


@pytest.mark.parametrize("vendor", VENDORS)
def test_client_side_code_never_imports_the_emulator(vendor: str) -> None:
    emulator = f"billbridge.connectors.{vendor}.emulator"
    offenders = []
    for path in sorted((ROOT / vendor).rglob("*.py")):
        relative = path.relative_to(ROOT / vendor)
        if relative.parts[0] == "emulator":
            continue
        package = ".".join(["billbridge.connectors", vendor, *relative.parts[:-1]])
        if any(name == emulator or name.startswith(f"{emulator}.")
               for name in _imports(path, package)):
            offenders.append(f"connectors/{vendor}/{relative}")
    assert offenders == [], f"client-side modules import the emulator: {offenders}"
