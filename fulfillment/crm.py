"""The order's milestones told to the CRM through the outbox.

Milestones: ``received`` (the order was created), ``shipped`` (everything has left),
``delivered``, ``returned`` (a parcel came back to us) and ``cancelled``. Each writes one
``crm_update`` action per target of ``CRM_TARGETS`` (``targets_for``) in the transaction of the
change that makes it, with a fixed version per milestone, so a repeated trigger (a re-run hook,
a second returned parcel) writes nothing new and each CRM hears of each milestone once.

The payload holds ids only (``order_id``, ``milestone``, and the ``shipment_id`` of a return);
the adapters (``downstream.crm_webhook``, ``downstream.crm_hubspot``) read the rest from the
order when they send.

Registered from ``FulfillmentConfig.ready()``: order transition hooks (``received`` fires from
``order_create``; ``ship``, ``deliver``, ``cancel``) and ``tracking.on_tracking_change``.
"""

from __future__ import annotations

from typing import Any

from fulfillment.downstream import CRM_UPDATE, targets_for
from fulfillment.models import ShipmentStatus
from fulfillment.tracking import Change
from orders.models import Order

# The outbox version of each milestone: one action per (order, milestone, target).
MILESTONE_VERSIONS = {"received": 1, "shipped": 2, "delivered": 3, "returned": 4, "cancelled": 5}
MILESTONES = tuple(MILESTONE_VERSIONS)
# Order transition hook -> milestone.
TRANSITION_MILESTONES = {
    "received": "received", "ship": "shipped", "deliver": "delivered", "cancel": "cancelled",
}  # fmt: skip


def crm_milestone_write(*, order_id: int, milestone: str, **extra: Any) -> list[int]:
    """Write one ``crm_update`` action per CRM target for this milestone of the order (in the
    caller's transaction; idempotent); the ids of the actions."""
    from fulfillment.outbox import services as outbox

    if milestone not in MILESTONE_VERSIONS:
        raise ValueError(f"unknown CRM milestone {milestone!r}")
    targets = targets_for(CRM_UPDATE)
    if not targets:
        return []
    cid = Order.objects.filter(pk=order_id).values_list("correlation_id", flat=True).first()
    ids = []
    for target in targets:
        action = outbox.action_write(
            order_id=order_id, kind=CRM_UPDATE, target=target,
            payload={"order_id": order_id, "milestone": milestone, **extra}, lane="sync",
            version=MILESTONE_VERSIONS[milestone], correlation_id=cid or "",
        )  # fmt: skip
        ids.append(action.pk)
    return ids


def on_order_milestone(transition: str) -> Any:
    """The order transition hook for ``transition``'s milestone."""
    milestone = TRANSITION_MILESTONES[transition]

    def hook(order_id: int) -> None:
        crm_milestone_write(order_id=order_id, milestone=milestone)

    hook.__name__ = f"crm_on_{transition}"
    return hook


def on_tracking_change(change: Change) -> None:
    """A parcel came back to the sender: the order's ``returned`` milestone."""
    if change.shipment.status == ShipmentStatus.RETURNED and change.from_state != str(
        ShipmentStatus.RETURNED
    ):
        crm_milestone_write(
            order_id=change.shipment.order_id, milestone="returned",
            shipment_id=change.shipment.pk,
        )  # fmt: skip


def register() -> None:
    """Attach the CRM to the order's transitions and to tracking (from ``ready()``)."""
    from fulfillment import tracking
    from orders import hooks

    for transition in TRANSITION_MILESTONES:
        hooks.on_transition(transition, _HOOKS[transition])
    tracking.on_tracking_change(on_tracking_change)


# Built once, so registering twice (tests, reloads) adds each hook once.
_HOOKS = {name: on_order_milestone(name) for name in TRANSITION_MILESTONES}
