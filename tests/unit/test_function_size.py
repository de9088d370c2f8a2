"""No function in src/ over 80 lines (issue 32): one that grows past it
usually holds two ideas, and is split along them (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import billbridge

MOST_LINES = 80
SOURCE = Path(billbridge.__file__).parent


def test_no_function_in_the_source_is_over_80_lines() -> None:
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 100  # the package itself, not an empty folder
    too_long = [f"{path.relative_to(SOURCE)}:{node.lineno} {node.name} "
                f"({node.end_lineno - node.lineno + 1} lines)"
                for path in files for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.end_lineno is not None
                and node.end_lineno - node.lineno + 1 > MOST_LINES]
    assert not too_long, "split these along their ideas: " + ", ".join(too_long)
