"""`manage.py que COMMAND ...`: the `que` command (que --help) on the project's database."""

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from que.cli.commands import main
from que.contrib.django import database_url, que_settings


class Command(BaseCommand):
    help = "the que job queue on this project's database: migrate, work, stats, dead, retry, enqueue, health"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("arguments", nargs=argparse.REMAINDER, help="a que command and its options (que --help)")

    def handle(self, *args: Any, **options: Any) -> str | None:
        arguments = list(options["arguments"])
        if arguments[:1] == ["work"] and not any(a == "--app" or a.startswith("--app=") for a in arguments):
            app = que_settings().get("APP")
            if not app:
                raise CommandError("manage.py que work needs --app MODULE[:ATTR] or settings.QUE['APP']")
            arguments += ["--app", app]
        code = main(["--database-url", database_url(), *arguments])
        if code:
            raise SystemExit(code)
        return None
