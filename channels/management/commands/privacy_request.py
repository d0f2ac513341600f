"""An operator's privacy request: the same export or redaction a channel's webhook triggers."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from channels.adapters.base import PrivacyRequest
from channels.models import SalesChannel
from channels.privacy import privacy_request_apply
from orders.actors import Actor
from orders.models import Incident, IncidentCategory

KINDS = ("data_request", "customer_redact", "shop_redact")


class Command(BaseCommand):
    help = (
        "Export what we hold on a customer of a channel (data_request: a file for ops_admin and "
        "a privacy_request incident with the due date), or remove their personal data "
        "(customer_redact), or every customer's of the channel (shop_redact; needs --yes). "
        "Safe to run twice: a second redaction changes nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("--channel", required=True, metavar="SLUG")
        parser.add_argument("--customer-email", default="")
        parser.add_argument("--customer-id", default="", help="The channel's customer id.")
        parser.add_argument("--order", action="append", default=[], metavar="EXTERNAL_ID",
                            help="A channel order id (repeatable).")  # fmt: skip
        parser.add_argument("--ref", default="", help="The request's reference (a ticket id).")
        parser.add_argument("--yes", action="store_true", help="Confirm a shop_redact.")

    def handle(self, *args: Any, **options: Any) -> None:
        channel = SalesChannel.objects.filter(slug=options["channel"]).first()
        if channel is None:
            raise CommandError(f"No channel {options['channel']!r}")
        kind = options["kind"]
        who = options["customer_email"] or options["customer_id"] or options["order"]
        if kind != "shop_redact" and not who:
            raise CommandError("Name the customer: --customer-email, --customer-id or --order")
        if kind == "shop_redact" and not options["yes"]:
            raise CommandError(f"shop_redact removes every customer's data of {channel.slug}: "
                               "add --yes")  # fmt: skip
        request = PrivacyRequest(
            kind=kind,
            shop_domain="",
            request_ref=options["ref"],
            customer_ref=str(options["customer_id"]),
            email=options["customer_email"].strip().lower(),
            order_ids=tuple(options["order"]),
        )
        now = timezone.now()
        outcome = privacy_request_apply(
            channel=channel, request=request, requested_at=now,
            actor=Actor.system("privacy_request"), fallback_ref=f"manual-{now:%Y%m%d%H%M%S}",
        )  # fmt: skip
        if outcome != "privacy_export":
            self.stdout.write(self.style.SUCCESS(f"{kind}: personal data removed ({channel.slug})"))
            return
        incident = (
            Incident.objects.filter(category=IncidentCategory.PRIVACY_REQUEST)
            .order_by("-last_seen_at", "-pk")
            .first()
        )
        details = incident.details if incident is not None else {}
        self.stdout.write(
            self.style.SUCCESS(f"Export written: {details.get('export_file')}, due "
                               f"{details.get('due_at')}, incident #{getattr(incident, 'pk', '')}")
        )  # fmt: skip
        self.stdout.write(f"ops_admin downloads it at {details.get('download_url')}")
