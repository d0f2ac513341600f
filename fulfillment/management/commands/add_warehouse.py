"""Add a warehouse, or update the one with that code (safe to run twice)."""

from __future__ import annotations

from datetime import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from fulfillment.models import WarehouseKind
from fulfillment.services import warehouse_upsert
from orders.errors import DomainError


class Command(BaseCommand):
    help = (
        "Add a warehouse: --code C --country CC [--kind own|3pl] [--priority N] [--name NAME] "
        "[--region REGION] [--international | --domestic-only] [--cutoff HH:MM] "
        "[--time-zone ZONE]. Running it again for the same "
        "code updates only the options given."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--code", required=True, help="Short stable code, e.g. NJ1")
        parser.add_argument("--country", required=True, help="ISO 3166-1 alpha-2, e.g. US")
        parser.add_argument("--kind", choices=WarehouseKind.values, help="own (default) or 3pl")
        parser.add_argument("--priority", help="Lower ships first among equally close (100)")
        parser.add_argument("--name", help="Display name (default: the code)")
        parser.add_argument("--region", help="Subdivision (US-CA) or area (EU) for proximity")
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument(
            "--international", dest="international", action="store_true", default=None,
            help="Ships abroad (the default for a new one)",
        )  # fmt: skip
        scope.add_argument(
            "--domestic-only", dest="international", action="store_false",
            help="Ships only within its own country",
        )  # fmt: skip
        parser.add_argument("--cutoff", help="Same-day cut-off, local HH:MM (14:00)")
        parser.add_argument("--time-zone", dest="time_zone",
                            help="IANA time zone of its clock, e.g. America/New_York")  # fmt: skip
        active = parser.add_mutually_exclusive_group()
        active.add_argument("--active", dest="active", action="store_true", default=None)
        active.add_argument("--inactive", dest="active", action="store_false",
                            help="Never allocate from it")  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        priority = options["priority"]
        if priority is not None:
            try:
                priority = int(priority)
            except ValueError:
                raise CommandError(f"--priority must be a whole number, not {priority!r}") from None
        cutoff = options["cutoff"]
        if cutoff is not None:
            try:
                cutoff = time.fromisoformat(cutoff)
            except ValueError:
                raise CommandError(f"--cutoff must be a time HH:MM, not {cutoff!r}") from None
        try:
            result = warehouse_upsert(
                code=options["code"],
                country=options["country"],
                kind=options["kind"],
                priority=priority,
                name=options["name"],
                region=options["region"],
                ships_international=options["international"],
                is_active=options["active"],
                cutoff_time=cutoff,
                time_zone=options["time_zone"],
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        w = result.warehouse
        where = f"{w.country} {w.region}".strip()
        scope = "international" if w.ships_international else "domestic only"
        inactive = "" if w.is_active else ", inactive"
        summary = (
            f"{w.code} ({w.get_kind_display()}, {where}, priority {w.priority}, {scope}{inactive})"
        )
        if result.created:
            self.stdout.write(f"Created warehouse {summary}.")
        elif result.changed:
            self.stdout.write(f"Updated warehouse {summary}: {', '.join(result.changed)}.")
        else:
            self.stdout.write(f"Warehouse {summary} already exists; nothing changed.")
