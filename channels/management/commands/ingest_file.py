"""Import a vendor payload from a file as if the channel had delivered it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from channels.models import InboundEvent, InboundStatus, SalesChannel
from channels.services import body_dedup_key, inbound_event_ingest_file, inbound_event_process

DEFAULT_TOPICS = {
    "shopify": "orders/create",
    "woocommerce": "order.created",
    "bigcommerce": "store/order/created",
    "amazon": "orders/poll",
    "custom": "order.created",
}


class Command(BaseCommand):
    help = (
        "Import FILE.json for channel S through the inbox (backfills, support cases). A REST "
        'response wrapped as {"order": {...}} is unwrapped to the webhook body. Processed at '
        "once unless --queue. Safe to run twice: the same file is a duplicate."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--channel", required=True, help="Channel slug")
        parser.add_argument("file")
        parser.add_argument("--topic", default="", help="Default: the kind's order-created topic")
        parser.add_argument("--queue", action="store_true", help="Leave it to the worker")

    def handle(self, *args: Any, **options: Any) -> None:
        channel = SalesChannel.objects.filter(slug=options["channel"]).first()
        if channel is None:
            raise CommandError(f"No channel {options['channel']!r} (see add_channel)")
        path = Path(options["file"])
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
        body = self._unwrapped(body)
        topic = options["topic"] or DEFAULT_TOPICS[channel.kind]
        event, created = inbound_event_ingest_file(channel=channel, body=body, topic=topic)
        if not created:
            existing = InboundEvent.objects.get(channel=channel, dedup_key=body_dedup_key(body))
            if existing.status == InboundStatus.QUARANTINED:
                self._report_quarantine(path.name, existing)
            self.stdout.write(
                f"{path.name}: already imported as event {existing.pk} ({existing.status}), "
                "nothing to do"
            )
            return
        assert event is not None  # a new event (created) always comes back with its row
        if not options["queue"]:
            event = inbound_event_process(event_id=event.pk) or event
            event.refresh_from_db()
        if event.status == InboundStatus.QUARANTINED:
            self._report_quarantine(path.name, event)
        order = f", order #{event.order_id} {event.outcome}" if event.order_id else ""
        self.stdout.write(
            self.style.SUCCESS(f"{path.name}: event {event.pk} {event.status}{order}")
        )

    def _report_quarantine(self, name: str, event: InboundEvent) -> None:
        self.stderr.write(f"{name}: event {event.pk} quarantined (fix, then replay_event)")
        for error in event.errors:
            self.stderr.write(f"  {error.get('pointer') or '(body)'}: {error['message']}")
        raise SystemExit(1)

    def _unwrapped(self, body: bytes) -> bytes:
        try:
            data = json.loads(body)
        except ValueError:
            return body  # kept as it is: processing quarantines it with a readable error
        if isinstance(data, dict) and list(data) == ["order"] and isinstance(data["order"], dict):
            return json.dumps(data["order"]).encode()
        return body
