"""The duplicate check: the same customer ordering the same items again within minutes."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Prefetch, Q

from orders.models import Incident, IncidentCategory, Order, OrderEvent, OrderLine, OrderStatus
from orders.validation.outcomes import FAILED, CheckResult


class DuplicateOrderCheck:
    """The same customer ordering the same items for the same total within a short window
    (a double-clicked checkout, a storefront that re-sent an order under a new number): the
    later order waits for a person. A person who releases its hold after the warning has
    decided: the check lets it through from then on."""

    name = "duplicate"

    def run(self, order: Order) -> CheckResult:
        if order.customer_id is None:
            return CheckResult.passed("Guest order: no customer history to compare")
        window = timedelta(minutes=settings.DUPLICATE_ORDER_WINDOW_MINUTES)
        items = sorted((ln.sku or ln.channel_sku, ln.quantity) for ln in order.lines.all())
        candidates = (
            Order.objects.filter(
                customer_id=order.customer_id, currency=order.currency, total=order.total,
                placed_at__gte=order.placed_at - window, placed_at__lte=order.placed_at + window,
            )
            .filter(
                Q(placed_at__lt=order.placed_at) | Q(placed_at=order.placed_at, pk__lt=order.pk)
            )
            .exclude(status=OrderStatus.CANCELLED)
            # What the verdict names of a twin (most runs find none: the read is all it costs,
            # and building a whole row and its channel's is most of that).
            .select_related("channel")
            .only("id", "placed_at", "external_id", "channel__slug")
            .prefetch_related(Prefetch("lines", OrderLine.objects.only(
                "id", "order_id", "sku", "channel_sku", "quantity")))
            .order_by("-placed_at", "-pk")
        )  # fmt: skip
        twin = next(
            (
                other for other in candidates[:20]
                if sorted((ln.sku or ln.channel_sku, ln.quantity) for ln in other.lines.all())
                == items
            ),
            None,
        )  # fmt: skip
        if twin is None:
            return CheckResult.passed(
                f"No order of the same items and total by this customer within {window}"
            )
        warned = Incident.objects.filter(order_id=order.pk, details__check=self.name).first()
        if warned is not None and OrderEvent.objects.filter(
            order_id=order.pk, action="release_hold", actor_kind="user",
            at__gte=warned.first_seen_at,
        ).exists():  # fmt: skip
            return CheckResult.passed(
                f"Looks like order {twin.pk}, but a person released the hold after the warning",
                other_order_id=twin.pk,
            )
        minutes = int(abs((order.placed_at - twin.placed_at).total_seconds()) // 60)
        return CheckResult(
            outcome=FAILED,
            message=(
                f"Possible duplicate of order {twin.pk} ({twin.channel.slug} "
                f"{twin.external_id}): same customer, items and total, placed {minutes} min apart"
            ),
            incident_category=IncidentCategory.DUPLICATE_SUSPECTED,
            key=self.name,
            details={
                "other_order_id": twin.pk,
                "other_channel": twin.channel.slug,
                "other_external_id": twin.external_id,
                "minutes_apart": minutes,
            },
        )
