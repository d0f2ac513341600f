"""What to reorder now, as a table or a CSV file (fulfillment.replenishment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from fulfillment.models import Warehouse
from fulfillment.replenishment import replenishment_suggestions, suggestions_csv


class Command(BaseCommand):
    help = (
        "List every SKU and warehouse whose available stock (on hand - reserved) is at or below "
        "its reorder point, most urgent (fewest days of cover) first, with the suggested "
        "quantity and why. A table to stdout, or --csv FILE."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--warehouse", help="Only this warehouse (its code)")
        parser.add_argument("--sku", help="Only this SKU")
        parser.add_argument("--csv", dest="csv_file", help="Write the list to this CSV file")
        parser.add_argument("--why", action="store_true", help="Print the reason under each row")

    def handle(self, *args: Any, **options: Any) -> None:
        code = options["warehouse"]
        if code is not None:
            warehouse = Warehouse.objects.filter(code=code).first()
            if warehouse is None:
                known = ", ".join(Warehouse.objects.values_list("code", flat=True)) or "none"
                raise CommandError(f"Unknown warehouse {code!r} (known: {known})")
            if not warehouse.is_active:
                raise CommandError(f"Warehouse {code!r} is inactive: nothing is reordered there")
        suggestions = replenishment_suggestions(warehouse_code=code, sku=options["sku"])
        if options["csv_file"]:
            path = Path(options["csv_file"])
            if not path.parent.is_dir():
                raise CommandError(f"Cannot write {path}: folder {path.parent} does not exist")
            try:
                path.write_text(suggestions_csv(suggestions), encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"Cannot write {path}: {exc.strerror}") from None
            self.stdout.write(f"Wrote {len(suggestions)} suggestion(s) to {path}.")
            return
        if not suggestions:
            self.stdout.write("Nothing to reorder: every SKU is above its reorder point.")
            return
        header = ("SKU", "WH", "ON HAND", "RESV", "AVAIL", "VEL/DAY", "COVER", "LEAD", "SAFETY",
                  "ROP", "SUGGEST")  # fmt: skip
        rows = [
            (s.sku, s.warehouse, s.on_hand, s.reserved, s.available, s.velocity_per_day,
             "-" if s.days_of_cover is None else s.days_of_cover, s.lead_time_days,
             s.safety_days, f"{s.reorder_point} {s.reorder_point_source}", s.suggested_quantity)
            for s in suggestions
        ]  # fmt: skip
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        line = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
        self.stdout.write(line.format(*header))
        for s, row in zip(suggestions, rows, strict=True):
            self.stdout.write(line.format(*(str(c) for c in row)))
            if options["why"]:
                self.stdout.write(f"    {s.why}")
        self.stdout.write(f"{len(suggestions)} suggestion(s).")
