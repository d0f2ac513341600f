"""Pull new and updated orders from a polled channel (Amazon SP-API) into the inbox."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from channels.adapters.base import AdapterError
from channels.models import SalesChannel
from channels.polling import channel_poll
from orders.errors import DomainError


class Command(BaseCommand):
    help = "Poll channel S once (the beat schedule does this every POLL_INTERVAL_SECONDS)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        channel = SalesChannel.objects.filter(slug=options["slug"]).first()
        if channel is None:
            raise CommandError(f"No channel {options['slug']!r}")

        def progress(count: int) -> None:
            if count % 50 == 0:
                self.stdout.write(f"  {count} order(s) fetched…")

        try:
            result = channel_poll(channel_id=channel.pk, progress=progress)
        except (DomainError, AdapterError) as exc:
            raise CommandError(f"Polling {channel.slug} failed: {exc}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Polled {channel.slug}: {result.new} new, {result.duplicates} unchanged; "
                f"next poll from {result.cursor.isoformat()}"
            )
        )
