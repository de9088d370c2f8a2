"""`make demo` installs the product alone; the test targets install the dev
extra too (read from what make would run, with a venv that is not there)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def planned(target: str, venv: Path) -> str:
    return subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
                          capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_demo_installs_the_runtime_only_and_the_tests_install_the_dev_extra(
        tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    demo = planned("demo", venv)
    assert "pip install --quiet --disable-pip-version-check -e .\n" in demo
    assert "[dev]" not in demo and "billbridge demo" in demo
    for target in ("unit", "integration", "lint", "typecheck"):
        assert "-e '.[dev]'" in planned(target, venv), target
