"""Set on-hand stock per (SKU, warehouse) from a CSV file."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.csvfiles import read_csv_file
from config.tasks import enqueue
from fulfillment.models import StockLevel, Warehouse
from fulfillment.services import stock_restock
from orders.errors import DomainError

COLUMNS = ["sku", "warehouse", "on_hand"]
MAX_ON_HAND = 2_147_483_647


class Command(BaseCommand):
    help = (
        "Import stock from a CSV with the header sku,warehouse,on_hand (warehouse: its code; "
        "on_hand: a whole number >= 0 that replaces the current count). Rejected rows (unknown "
        "warehouse, bad on_hand, on_hand below what is reserved, duplicates) are reported with "
        "their line number; the exit code is 1 if any row was rejected. After a real import, "
        "backordered orders are retried."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="CSV file")
        parser.add_argument("--dry-run", action="store_true", help="Check only; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        dry_run = options["dry_run"]
        rows, rejected = read_csv_file(path, self._read)

        # Compare with what is reserved now; a real import compares again in the update itself.
        reserved = {
            (sku, code): r
            for sku, code, r in StockLevel.objects.filter(
                sku__in={r["sku"] for r in rows}
            ).values_list("sku", "warehouse__code", "reserved")
        }
        accepted = []
        for row in rows:
            held = reserved.get((row["sku"], row["warehouse"]), 0)
            if row["on_hand"] < held:
                reason = (
                    f"on_hand {row['on_hand']} for {row['sku']} at {row['warehouse']} is below "
                    f"the {held} unit(s) reserved there"
                )
                rejected.append((row["line"], reason))
            else:
                accepted.append(row)

        applied = 0
        if not dry_run:
            for i, row in enumerate(accepted, start=1):
                try:
                    stock_restock(sku=row["sku"], warehouse_code=row["warehouse"],
                                  on_hand=row["on_hand"])  # fmt: skip
                    applied += 1
                except DomainError as exc:  # reserved meanwhile, say
                    rejected.append((row["line"], str(exc)))
                if i % 1000 == 0:
                    self.stdout.write(f"  {i}/{len(accepted)} rows…")
        for line_no, reason in sorted(rejected):
            self.stderr.write(f"line {line_no}: {reason}")
        if dry_run:
            self.stdout.write(
                f"Dry run: would set {len(accepted)} stock level(s); "
                f"rejected {len(rejected)} row(s)."
            )
        else:
            self.stdout.write(f"Set {applied} stock level(s); rejected {len(rejected)} row(s).")
            if applied:
                enqueue("fulfillment.backorders_retry")
                self.stdout.write("Backordered orders will be retried.")
        if rejected:
            raise SystemExit(1)

    def _read(self, path: Path, handle: Any) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CommandError(
                f"{path}: header must include {', '.join(missing)} "
                f"(expected columns: {','.join(COLUMNS)})"
            )
        warehouses = set(Warehouse.objects.values_list("code", flat=True))
        rows: list[dict[str, Any]] = []
        rejected: list[tuple[int, str]] = []
        seen: dict[tuple[str, str], int] = {}
        for row in reader:
            line_no = reader.line_num
            try:
                parsed = self._parse(row, warehouses)
                key = (parsed["sku"], parsed["warehouse"])
                if key in seen:
                    raise ValueError(f"duplicate {key[0]} at {key[1]} (first on line {seen[key]})")
                seen[key] = line_no
                rows.append({**parsed, "line": line_no})
            except ValueError as exc:
                rejected.append((line_no, str(exc)))
        return rows, rejected

    def _parse(self, row: dict[str, str], warehouses: set[str]) -> dict[str, Any]:
        sku = (row.get("sku") or "").strip()
        code = (row.get("warehouse") or "").strip()
        raw = (row.get("on_hand") or "").strip()
        if not sku:
            raise ValueError("sku is empty")
        if len(sku) > 100:
            raise ValueError("sku is longer than 100 characters")
        if not code:
            raise ValueError(f"warehouse is empty for sku {sku}")
        if code not in warehouses:
            raise ValueError(f"unknown warehouse {code!r} (add it with add_warehouse)")
        if not raw:
            raise ValueError(f"on_hand is empty for {sku} at {code}")
        digits = raw[1:] if raw[0] in "+-" else raw
        if not digits.isdigit() or not digits.isascii():
            raise ValueError(f"on_hand {raw!r} for {sku} at {code} is not a whole number")
        on_hand = int(raw)
        if on_hand < 0:
            raise ValueError(f"on_hand {raw} for {sku} at {code} is negative")
        if on_hand > MAX_ON_HAND:
            raise ValueError(f"on_hand {raw} for {sku} at {code} is not plausible")
        return {"sku": sku, "warehouse": code, "on_hand": on_hand}
