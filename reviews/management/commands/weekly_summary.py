"""Build (and email) the weekly leadership summary of an ISO week."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email

from orders.errors import DomainError
from reviews.summary import Week, recipients_default, weekly_summary_build, weekly_summary_send


class Command(BaseCommand):
    help = (
        "Build the leadership summary of an ISO week (--week YYYY-Www; default: the last week "
        "that has ended, in TIME_ZONE), keep it as a page, print it, and email it to --email "
        "ADDR (repeatable) or else to WEEKLY_SUMMARY_RECIPIENTS. Re-running a week gives the "
        "same figures."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--week", metavar="YYYY-Www")
        parser.add_argument("--email", action="append", default=[], metavar="ADDR")
        parser.add_argument("--no-email", action="store_true", help="Only build and print.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            week = Week.parse(options["week"]) if options["week"] else Week.last_complete()
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        for address in options["email"]:
            try:
                validate_email(address)
            except ValidationError:
                raise CommandError(f"--email {address!r} is not an email address") from None
        summary = weekly_summary_build(week=week)
        self.stdout.write(summary.subject)
        self.stdout.write("")
        self.stdout.write(summary.text)
        to = [] if options["no_email"] else (options["email"] or recipients_default())
        if to:
            weekly_summary_send(summary=summary, to=to)
            self.stdout.write(f"Emailed to {', '.join(sorted(set(to)))}.")
        else:
            self.stdout.write("Not emailed (no --email and no WEEKLY_SUMMARY_RECIPIENTS).")
