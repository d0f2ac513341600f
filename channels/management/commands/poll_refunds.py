"""Pull refund events (Amazon Finances API) into the inbox, where they are recorded as refunds."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from channels.adapters.base import AdapterError
from channels.models import SalesChannel
from channels.polling import channel_refunds_poll, refund_polled_channel_ids
from orders.errors import DomainError


class Command(BaseCommand):
    help = (
        "Poll refund events once, of channel SLUG or of every active Amazon channel "
        "(the beat schedule does this hourly, REFUNDS_POLL_INTERVAL_SECONDS)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--channel", metavar="SLUG", help="one channel (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options.get("channel")
        if slug:
            channel = SalesChannel.objects.filter(slug=slug).first()
            if channel is None:
                raise CommandError(f"No channel {slug!r}")
            ids = [channel.pk]
        else:
            ids = refund_polled_channel_ids()
            if not ids:
                self.stdout.write("No active channel with polled refunds.")
        for channel_id in ids:
            channel = SalesChannel.objects.get(pk=channel_id)

            def progress(count: int) -> None:
                if count % 50 == 0:
                    self.stdout.write(f"  {count} refund event(s) fetched…")

            try:
                result = channel_refunds_poll(channel_id=channel.pk, progress=progress)
            except (DomainError, AdapterError) as exc:
                raise CommandError(f"Polling refunds of {channel.slug} failed: {exc}") from None
            self.stdout.write(
                self.style.SUCCESS(
                    f"Polled refunds of {channel.slug}: {result.new} new, {result.duplicates} "
                    f"unchanged; next poll from {result.cursor.isoformat()}"
                )
            )
