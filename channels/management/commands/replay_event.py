"""Replay quarantined inbound events after a fix."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from channels.models import InboundEvent, InboundStatus
from channels.services import inbound_event_replay
from orders.actors import Actor
from orders.errors import NotFound


class Command(BaseCommand):
    help = (
        "Process quarantined inbound events again. Safe to run twice: an event that is not "
        "quarantined is left as it is. Exit code 1 if any event is still quarantined."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("event_ids", nargs="+", type=int, metavar="ID")

    def handle(self, *args: Any, **options: Any) -> None:
        failed = 0
        for event_id in options["event_ids"]:
            before = InboundEvent.objects.filter(pk=event_id).values_list("status", flat=True)
            was_quarantined = list(before) == [InboundStatus.QUARANTINED]
            try:
                event = inbound_event_replay(event_id=event_id, actor=Actor.system("replay_event"))
            except NotFound as exc:
                raise CommandError(str(exc)) from None
            if not was_quarantined:
                self.stdout.write(f"Event {event_id}: {event.status}, nothing to replay")
            elif event.status == InboundStatus.REPLAYED:
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Event {event_id}: replayed, order #{event.order_id} {event.outcome}"
                    )  # fmt: skip
                )
            elif event.status == InboundStatus.QUARANTINED:
                failed += 1
                self.stderr.write(f"Event {event_id}: still quarantined")
                for error in event.errors:
                    self.stderr.write(f"  {error.get('pointer') or '(body)'}: {error['message']}")
            else:
                self.stdout.write(f"Event {event_id}: {event.status}, nothing to replay")
        if failed:
            raise SystemExit(1)
