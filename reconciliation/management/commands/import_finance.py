"""Import payouts, processor transactions, settlements, ERP documents or bank statements."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from channels.models import SalesChannel
from config.integrations import IntegrationError
from orders.errors import DomainError
from reconciliation.importers import ImportOptions, import_api, import_files
from reconciliation.models import BankAccount, Source

T = TypeVar("T")


class Command(BaseCommand):
    help = (
        "Import finance data from files or from the vendor's API (--api): each source row once "
        "(re-importing changes nothing), a progress bar on stderr, one error per row that cannot "
        "be read (file and line or JSON pointer), and the vendor's own inconsistencies flagged "
        "on the rows. Exit code 1 when a row was rejected or a file could not be read."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", required=True, choices=Source.values)
        parser.add_argument("files", nargs="*", type=Path, metavar="FILE")
        parser.add_argument("--api", action="store_true", help="Read the vendor's API instead.")
        parser.add_argument("--channel", metavar="SLUG", help="The sales channel it belongs to.")
        parser.add_argument("--account", metavar="NAME", help="The bank account (statements).")
        parser.add_argument("--since", type=date.fromisoformat, help="API: from YYYY-MM-DD.")
        parser.add_argument("--until", type=date.fromisoformat, help="API: up to YYYY-MM-DD.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        if bool(options["files"]) == bool(options["api"]):
            raise CommandError("Give the files to import, or --api (not both)")
        for path in options["files"]:
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
        channel = account = None
        if options["channel"]:
            channel = SalesChannel.objects.filter(slug=options["channel"]).first()
            if channel is None:
                raise CommandError(f"No channel {options['channel']!r}")
        if options["account"]:
            account = BankAccount.objects.filter(name=options["account"]).first()
            if account is None:
                raise CommandError(f"No bank account {options['account']!r} (add it in the admin)")
        quiet = options["no_progress"] or options["verbosity"] < 1

        def progress(items: Iterable[T], *, total: int | None = None, desc: str = "") -> Any:
            return tqdm(items, total=total, desc=desc or options["source"], unit="row",
                        file=sys.stderr, disable=quiet, dynamic_ncols=True)  # fmt: skip

        settings = ImportOptions(
            source=options["source"], channel=channel, account=account, since=options["since"],
            until=options["until"], progress=progress,
        )  # fmt: skip
        try:
            runs = (import_api(options=settings) if options["api"]
                    else import_files(options["files"], options=settings))  # fmt: skip
        except (LookupError, DomainError, IntegrationError, OSError) as exc:  # a vendor API failed
            raise CommandError(str(exc)) from None
        rejected = 0
        for run in runs:
            self.stdout.write(
                f"{run.origin}: {run.rows_read} read, {run.rows_new} new, {run.rows_unchanged} "
                f"already there, {run.rows_rejected} rejected, {run.defects} with a vendor "
                "defect (kept, flagged)"
            )
            for error in run.errors:
                self.stderr.write(f"  {error['where']}: {error['message']}")
            rejected += run.rows_rejected
        if rejected:
            raise CommandError(f"{rejected} row(s) could not be imported (listed above)",
                               returncode=1)  # fmt: skip
