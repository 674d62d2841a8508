"""The `que` command: its grammar (parser) and what each subcommand runs (commands)."""

from que.cli.commands import main

__all__ = ["main"]
