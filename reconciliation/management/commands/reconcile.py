"""Reconcile a period: import, match, compute, print the table; exit 1 while money is
unexplained."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels.models import SalesChannel
from orders import money
from orders.errors import DomainError
from reconciliation.models import Category, Comparison, VarianceItem
from reconciliation.services import reconcile, table_lines
from reconciliation.variance import Period


class Command(BaseCommand):
    help = (
        "Reconcile a period (YYYY-MM or YYYY-MM-DD..YYYY-MM-DD): import what is configured "
        "(--no-import: what is in already), match orders, processor transactions, payouts, bank "
        "lines and ERP documents, compute the variance and print one row per channel and "
        "currency, then the unexplained items. A closed period shows what changed since its "
        "close. Exit code 1 while anything is unexplained."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", required=True)
        parser.add_argument("--channel", metavar="SLUG")
        parser.add_argument("--no-import", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            period = Period.parse(options["period"])
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        channel = None
        if options["channel"]:
            channel = SalesChannel.objects.filter(slug=options["channel"]).first()
            if channel is None:
                raise CommandError(f"No channel {options['channel']!r}")
        report = reconcile(period=period, channel=channel, do_import=not options["no_import"])
        for run in report.imports:
            self.stdout.write(f"imported {run.origin}: {run.rows_new} new, "
                              f"{run.rows_unchanged} already there, {run.rows_rejected} "
                              "rejected")  # fmt: skip
        for error in report.import_errors:
            self.stderr.write(f"import failed: {error}")
        for line in table_lines(report):
            self.stdout.write(line)
        if report.closed is not None:
            when = f"{report.closed.closed_at:%Y-%m-%d %H:%M}"
            self.stdout.write(f"Closed by {report.closed.closed_by} on {when} UTC; since then:")

            def shown(value: str, cur: str) -> str:
                return value if value == "-" else str(money.normalize(Decimal(value), cur))

            for (ch, cur, column), (was, now) in sorted(report.changes.items()):
                self.stdout.write(f"  {ch} {cur} {column}: {shown(was, cur)} at the close, "
                                  f"{shown(now, cur)} now")  # fmt: skip
            if not report.changes:
                self.stdout.write("  no change")
        open_items = VarianceItem.objects.filter(
            period=period.label, category=Category.UNEXPLAINED, resolved_by__isnull=True
        )
        if channel is not None:
            open_items = open_items.filter(channel=channel)
        total = sum(report.unexplained.values(), Decimal(0))
        if total:
            self.stdout.write("Unexplained:")
            for item in open_items.select_related("channel").order_by("comparison", "pk"):
                self.stdout.write(f"  [{Comparison(item.comparison).label}] {item.description}")
            raise CommandError(
                "unexplained: " + ", ".join(f"{v} {k}" for k, v in report.unexplained.items() if v),
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS("Nothing unexplained."))
