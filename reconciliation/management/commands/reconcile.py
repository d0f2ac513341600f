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
from reconciliation.services import Report, reconcile
from reconciliation.variance import Period

HEADERS = ("channel", "cur", "sales", "refunds", "ERP", "processor", "fees", "payouts", "bank",
           "variance %", "unexplained")  # fmt: skip


def table_lines(report: Report) -> list[str]:
    """The report as the command prints it: a title, a header and one line per row."""
    table: list[tuple[str, ...]] = [HEADERS]
    for row in report.rows:

        def s(value: Decimal, cur: str = row.currency) -> str:
            return str(money.normalize(value, cur))

        pct = row.variance_percent
        table.append((row.channel, row.currency, *(s(row.columns.get(c, Decimal(0))) for c in
                      ("sales", "refunds", "erp", "processor", "fees", "payouts", "bank")),
                      "-" if pct is None else f"{pct}%", s(row.unexplained_total)))  # fmt: skip
    widths = [max(len(str(r[i])) for r in table) for i in range(len(HEADERS))]
    period = report.period
    lines = [f"Reconciliation {period.label} ({period.start} to {period.end})"]
    for r in table:
        cells = zip(r, widths, strict=True)
        lines.append("  ".join(str(v).rjust(w) if i > 1 else str(v).ljust(w)
                               for i, (v, w) in enumerate(cells)))  # fmt: skip
    return lines


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
