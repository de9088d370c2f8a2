"""Every option of every command says what it is for: a walk over the Typer
app fails naming each option (or argument) without help text."""

from __future__ import annotations

from typing import Any

import typer

from billbridge.cli.app import app


def commands(group: Any, path: str = "billbridge") -> list[tuple[str, Any]]:
    """Every visible command under ``group``, by its path (Typer's own click)."""
    found: list[tuple[str, Any]] = []
    for name, command in group.commands.items():
        if command.hidden:
            continue
        found.append((f"{path} {name}", command))
        if hasattr(command, "commands"):
            found += commands(command, f"{path} {name}")
    return found


def test_every_option_and_argument_has_help() -> None:
    root = typer.main.get_command(app)
    missing = [f"{path} {param.opts[0] if param.opts else param.name}"
               for path, command in commands(root) for param in command.params
               if not getattr(param, "help", None) and not param.hidden
               and param.name != "help"]
    assert missing == [], "options without help text:\n" + "\n".join(missing)


def test_every_command_says_what_it_does() -> None:
    root = typer.main.get_command(app)
    assert [path for path, command in commands(root) if not command.help] == []


def test_migrate_is_one_command() -> None:
    root = typer.main.get_command(app)
    assert "migrate" in root.commands and "migrate-db" not in root.commands
