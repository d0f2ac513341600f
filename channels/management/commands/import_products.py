"""Import or update catalogue products from a CSV file."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from config.csvfiles import read_csv_file
from orders.models import Product

COLUMNS = ["sku", "title", "weight", "hs_code", "origin_country", "tags"]


class Command(BaseCommand):
    help = (
        "Import products from a CSV with the header sku,title,weight,hs_code,origin_country,tags "
        "(weight in grams; tags separated by | or ;). Existing SKUs are updated. Rejected rows are "
        "reported with their line number; the exit code is 1 if any row was rejected."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="CSV file")
        parser.add_argument("--dry-run", action="store_true", help="Check only; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        rows, rejected = read_csv_file(path, self._read)
        existing = set(
            Product.objects.filter(sku__in=[r["sku"] for r in rows]).values_list("sku", flat=True)
        )
        updated = len(existing)
        created = len(rows) - updated
        if not options["dry_run"]:
            with transaction.atomic():
                for i, row in enumerate(rows, start=1):
                    Product.objects.update_or_create(sku=row["sku"], defaults=row)
                    if i % 1000 == 0:
                        self.stdout.write(f"  {i}/{len(rows)} rows…")
        for line_no, reason in rejected:
            self.stderr.write(f"line {line_no}: {reason}")
        prefix = "Dry run: would import" if options["dry_run"] else "Imported"
        self.stdout.write(
            f"{prefix} {len(rows)} product(s) ({created} new, {updated} updated); "
            f"rejected {len(rejected)} row(s)."
        )
        if rejected:
            raise SystemExit(1)

    def _read(self, path: Path, handle: Any) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
        reader = csv.DictReader(handle)
        missing = [c for c in ("sku", "title") if c not in (reader.fieldnames or [])]
        if missing:
            raise CommandError(
                f"{path}: header must include {', '.join(missing)} "
                f"(expected columns: {','.join(COLUMNS)})"
            )
        rows, rejected = [], []
        seen: dict[str, int] = {}
        for row in reader:
            line_no = reader.line_num  # the file's line, even after multi-line fields
            try:
                product = self._parse(row)
                if product["sku"] in seen:
                    raise ValueError(f"duplicate sku (first on line {seen[product['sku']]})")
                seen[product["sku"]] = line_no
                rows.append(product)
            except ValueError as exc:
                rejected.append((line_no, str(exc)))
        return rows, rejected

    def _parse(self, row: dict[str, str]) -> dict[str, Any]:
        sku = (row.get("sku") or "").strip()
        title = (row.get("title") or "").strip()
        if not sku:
            raise ValueError("sku is empty")
        if len(sku) > 100:
            raise ValueError("sku is longer than 100 characters")
        if not title:
            raise ValueError(f"title is empty for sku {sku}")
        weight_raw = (row.get("weight") or "").strip()
        weight = None
        if weight_raw:
            if not weight_raw.isdigit():
                raise ValueError(f"weight {weight_raw!r} is not a whole number of grams")
            weight = int(weight_raw)
            if weight > 2_147_483_647:
                raise ValueError(f"weight {weight_raw} grams is not plausible")
        country = (row.get("origin_country") or "").strip().upper()
        if country and (len(country) != 2 or not country.isalpha()):
            raise ValueError(f"origin_country {country!r} is not an ISO 3166-1 alpha-2 code")
        hs_code = (row.get("hs_code") or "").strip().replace(".", "")
        if hs_code and (not hs_code.isdigit() or not 6 <= len(hs_code) <= 10):
            raise ValueError(f"hs_code {row.get('hs_code')!r} must be 6 to 10 digits")
        raw_tags = (row.get("tags") or "").replace(";", "|")
        tags = sorted({t.strip().lower() for t in raw_tags.split("|") if t.strip()})
        return {"sku": sku, "title": title[:255], "weight_grams": weight, "hs_code": hs_code,
                "origin_country": country, "tags": json.loads(json.dumps(tags))}  # fmt: skip
