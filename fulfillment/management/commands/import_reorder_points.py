"""Set reorder points per (SKU, warehouse) from a CSV file."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.csvfiles import read_csv_file
from fulfillment.replenishment import reorder_point_upsert
from orders.errors import DomainError

REQUIRED = ["sku", "warehouse", "reorder_point", "lead_time_days", "safety_days"]
OPTIONAL = ["order_up_to", "min_order_qty", "notes"]


def _whole(raw: str, name: str, *, empty: int | None) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return empty
    if not raw.isascii() or not raw.isdigit():
        raise ValueError(f"{name} {raw!r} is not a whole number >= 0")
    return int(raw)


class Command(BaseCommand):
    help = (
        "Import reorder points from a CSV with the header "
        f"{','.join(REQUIRED)}[,{','.join(OPTIONAL)}]. An empty reorder_point means computed "
        "from sales velocity. Each row creates or replaces that SKU's reorder point in that "
        "warehouse (safe to run twice); rejected rows are listed with their line and the exit "
        "code is 1."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="CSV file")
        parser.add_argument("--dry-run", action="store_true", help="Check only; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = read_csv_file(Path(options["file"]), self._read)
        created = updated = 0
        rejected: list[tuple[int, str]] = []
        for line_no, row in rows:
            try:
                parsed: dict[str, Any] = {
                    "sku": (row.get("sku") or "").strip(),
                    "warehouse_code": (row.get("warehouse") or "").strip(),
                    "reorder_point": _whole(
                        row.get("reorder_point", ""), "reorder_point", empty=None
                    ),  # fmt: skip
                    "lead_time_days": _whole(
                        row.get("lead_time_days", ""), "lead_time_days", empty=7
                    ),  # fmt: skip
                    "safety_days": _whole(row.get("safety_days", ""), "safety_days", empty=3),
                    "order_up_to": _whole(row.get("order_up_to", ""), "order_up_to", empty=None),
                    "min_order_qty": _whole(
                        row.get("min_order_qty", ""), "min_order_qty", empty=1
                    ),  # fmt: skip
                    "notes": (row.get("notes") or "").strip(),
                }
                if options["dry_run"]:
                    continue
                _row, was_created = reorder_point_upsert(**parsed)
                created += was_created
                updated += not was_created
            except (ValueError, DomainError) as exc:
                rejected.append((line_no, str(exc)))
        for line_no, reason in rejected:
            self.stderr.write(f"line {line_no}: {reason}")
        if options["dry_run"]:
            self.stdout.write(f"Dry run: read {len(rows)} row(s); rejected {len(rejected)}.")
        else:
            self.stdout.write(
                f"Created {created}, updated {updated} reorder point(s); "
                f"rejected {len(rejected)} row(s)."
            )
        if rejected:
            raise SystemExit(1)

    def _read(self, path: Path, handle: Any) -> list[tuple[int, dict[str, str]]]:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise CommandError(
                f"{path}: header must include {', '.join(missing)} "
                f"(expected columns: {','.join(REQUIRED + OPTIONAL)})"
            )
        return [(reader.line_num, row) for row in reader]
