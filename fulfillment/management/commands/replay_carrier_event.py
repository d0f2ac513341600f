"""Replay quarantined carrier events after a fix."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from fulfillment.carrier_events import carrier_event_replay
from fulfillment.models import CarrierInboundEvent, CarrierInboundStatus
from orders.actors import Actor
from orders.errors import NotFound


class Command(BaseCommand):
    help = (
        "Process quarantined carrier events (carrier webhooks) again, e.g. once the shipment "
        "they name exists. Safe to run twice: an event that is not quarantined is left as it "
        "is. Exit code 1 if any event is still quarantined, 2 for an id that does not exist."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("event_ids", nargs="+", type=int, metavar="ID")

    def handle(self, *args: Any, **options: Any) -> None:
        failed = 0
        actor = Actor.system("replay_carrier_event")
        for event_id in options["event_ids"]:
            before = CarrierInboundEvent.objects.filter(pk=event_id).values_list(
                "status", flat=True
            )
            was_quarantined = list(before) == [CarrierInboundStatus.QUARANTINED]
            try:
                event = carrier_event_replay(event_id=event_id, actor=actor)
            except NotFound as exc:
                raise CommandError(str(exc), returncode=2) from None
            if not was_quarantined:
                self.stdout.write(f"Carrier event {event_id}: {event.status}, nothing to replay")
            elif event.status == CarrierInboundStatus.QUARANTINED:
                failed += 1
                self.stderr.write(f"Carrier event {event_id}: still quarantined")
                for error in event.errors:
                    self.stderr.write(f"  {error.get('pointer') or '(body)'}: {error['message']}")
            else:
                self.stdout.write(self.style.SUCCESS(
                    f"Carrier event {event_id}: {event.status}, {event.outcome}"
                ))  # fmt: skip
        if failed:
            raise SystemExit(1)
