"""Generate a month of one Shopify channel for reconciliation: orders (ours) and the vendors'
files (Shopify Payments payouts and balance transactions, the ERP export, the bank statement),
with a discrepancy of every category planted at known places (``--no-plant``: a consistent
month). See ``reconciliation/generator.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders.errors import DomainError
from reconciliation.generator import generate_month, import_month


class Command(BaseCommand):
    help = (
        "Generate a month for reconciliation: N orders of a Shopify channel (created if missing) "
        "through order_create, and the payouts, balance transactions, ERP export and bank "
        "statement files in DIR, with planted discrepancies listed in DIR/manifest.json."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", required=True, metavar="YYYY-MM")
        parser.add_argument("--orders", type=int, required=True, metavar="N")
        parser.add_argument("--out", type=Path, required=True, metavar="DIR")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--channel", default="gen-shop", metavar="SLUG")
        parser.add_argument(
            "--no-plant",
            action="store_true",
            help="A consistent month: nothing but timing at its edges.",
        )
        parser.add_argument(
            "--unexplained",
            action="store_true",
            help="Also plant one unexplained item (a payout never deposited).",
        )
        parser.add_argument(
            "--pipeline",
            action="store_true",
            help="Let the orders' after-commit work (validation pipeline) run.",
        )
        parser.add_argument("--import", dest="do_import", action="store_true",
                            help="Import the files afterwards (the real importers).")  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            generated = generate_month(
                period=options["period"], orders=options["orders"], out=options["out"],
                seed=options["seed"], plant=not options["no_plant"],
                unexplained=options["unexplained"], slug=options["channel"],
                pipeline=options["pipeline"],
                progress=lambda n: self.stderr.write(f"\r{n} orders", ending=""),
            )  # fmt: skip
        except (DomainError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write("")
        m = generated.manifest
        self.stdout.write(
            f"{m['period']} on {m['channel']}: {m['orders']} orders, {m['payouts']} "
            f"payouts, {m['transactions']} transactions, {m['erp_documents']} ERP "
            f"documents, {m['bank_lines']} bank lines in {generated.out}"
        )
        for category, planted in m["planted"].items():
            self.stdout.write(f"  planted {category}: {len(planted)}")
        if options["do_import"]:
            for run in import_month(generated):
                self.stdout.write(f"imported {run.origin}: {run.rows_new} new, "
                                  f"{run.rows_unchanged} already there, {run.rows_rejected} "
                                  "rejected")  # fmt: skip
        self.stdout.write(f"manifest: {json.dumps(str(generated.out / 'manifest.json'))}")
