"""The demo's returns, walked through the same services people and customers use: order 1018
is delivered, returned from its status page (authorized by the return policy, its label bought
through the outbox), received with the hoodie back to stock and the mug damaged, and refunded
exactly (the demo storefront cannot take refunds over an API, so the refund waits for finance to
confirm it was paid back by hand); order 1019's return is worth more than the policy authorizes
by itself and waits for customer service. Safe to re-run: each return has its request key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from fulfillment.carriers import local
from fulfillment.models import Return, Shipment, ShipmentStatus
from fulfillment.return_labels import return_label_purchase
from fulfillment.returns import (
    ReturnLineRequest,
    label_carrier_for,
    return_receive,
    return_request,
)
from fulfillment.status_returns import CUSTOMER
from fulfillment.tracking import tracking_record
from orders.actors import Actor
from orders.models import Order

# order -> the lines coming back: sku -> (reason, condition at receipt or "" to stay unreceived)
DEMO_RETURNS = {
    "1018": {"HOODIE-GRY-M": ("size_or_fit", "restock"), "MUG-WHT": ("damaged", "damaged")},
    "1019": {"TSHIRT-BLK-M": ("changed_mind", "")},
}


def _deliver(order: Order) -> None:
    """The local carrier simulator's whole story for each parcel still on its way (no
    delivery problem), recorded as the tracking poll would."""
    step = float(settings.LOCAL_CARRIER_TRACKING_STEP_SECONDS) or 1.0
    on_the_way = Shipment.objects.filter(
        order=order, status__in=[ShipmentStatus.SHIPPED, ShipmentStatus.IN_TRANSIT,
                                 ShipmentStatus.EXCEPTION], carrier="local",
    )  # fmt: skip
    for parcel in on_the_way:
        assert parcel.shipped_at is not None  # handed over
        later = max(timezone.now(), parcel.shipped_at) + timedelta(seconds=10 * step)
        story = local.simulate(parcel.tracking_number, shipped_at=parcel.shipped_at, now=later,
                               step_seconds=step, exception_rate=0)  # fmt: skip
        tracking_record(shipment_id=parcel.pk, tracking=story, source="poll")


def returns_play(*, write: Callable[[str], None]) -> None:
    desk = Actor.for_user(get_user_model().objects.get(username="cs"))
    for number, wanted in DEMO_RETURNS.items():
        order = Order.objects.filter(channel__slug="demo-webstore", external_id=number).first()
        if order is None:
            continue
        _deliver(order)
        order.refresh_from_db()
        if order.status not in ("delivered", "closed"):
            write(f"  order {number}: not delivered ({order.status}), no return")
            continue
        lines = {ln.sku: ln for ln in order.lines.all()}
        ret = return_request(
            order_id=order.pk, via="status_page", actor=CUSTOMER, key=f"demo-{number}",
            note="Demo: started on the order status page",
            lines=[ReturnLineRequest(lines[sku].pk, lines[sku].quantity, reason)
                   for sku, (reason, _condition) in wanted.items()],
        )  # fmt: skip
        # The label now, as its outbox action does (the worker's action then finds it bought),
        # so the label email finds it.
        if ret.status == "authorized":
            return_label_purchase(return_id=ret.pk, carrier_code=label_carrier_for(ret),
                                  actor=Actor.system("setup_demo"))  # fmt: skip
        conditions = {ln.pk: wanted[ln.sku][1] for ln in ret.lines.all() if wanted[ln.sku][1]}
        if ret.status == "authorized" and conditions:
            ret = return_receive(return_id=ret.pk, actor=desk, conditions=conditions,
                                 note="Demo: checked at the warehouse")  # fmt: skip
        ret = Return.objects.select_related("refund").get(pk=ret.pk)
        if ret.refund is not None:
            outcome = (f"refund {ret.refund.reference} {ret.refund.amount} {ret.refund.currency}"
                       f" ({ret.refund.get_status_display().lower()})")  # fmt: skip
        else:
            why = "; ".join(ret.policy_verdict.get("why_not") or []) or ret.get_status_display()
            outcome = f"waits for customer service ({why})"
        write(f"  order {number}: return {ret.rma_number} {ret.status}: {outcome}")
