"""The `billbridge` command line."""

from billbridge.cli.app import app, main

__all__ = ["app", "main"]
