"""Tracking of return parcels: from the customer's drop-off to the warehouse.

``return_track_poll`` asks the label's carrier about one authorized return that has a tracking
number and was not picked up yet (no transaction open during the call), keeps our tracking
status on the return, and on the first status beyond ``pre_transit`` calls
``fulfillment.returns.return_pickup`` (which refunds at pickup when the policy's
``refund_trigger`` is ``pickup``). ``return_tracking_apply`` does the same for a status a
carrier webhook told us (``fulfillment.carrier_events``). The poll round of shipments
(``fulfillment.tracking_poll``) polls these returns too.
"""

from __future__ import annotations

import structlog
from django.utils import timezone

from fulfillment.carriers import get_carrier
from fulfillment.carriers.base import TRACKING_STATUS_CODES, CarrierError, Tracking
from fulfillment.models import Return, ReturnStatus
from fulfillment.returns import return_pickup
from orders.actors import Actor

log = structlog.get_logger(__name__)

NOT_YET_PICKED_UP = frozenset({"", "unknown", "pre_transit", "cancelled"})


def return_ids_to_poll(*, limit: int = 500) -> list[int]:
    """Authorized returns with a label whose parcel the carrier has not picked up yet."""
    qs = (
        Return.objects.filter(status=ReturnStatus.AUTHORIZED, picked_up_at__isnull=True)
        .exclude(tracking_number="").exclude(label_carrier="")
        .order_by("authorized_at", "pk").values_list("pk", flat=True)
    )  # fmt: skip
    return list(qs[:limit])


def return_tracking_apply(*, return_id: int, status: str, carrier: str) -> str:
    """Keep ``status`` (ours) on the return; the first status beyond pre-transit is its
    pickup. The outcome: ``picked_up``, ``changed`` or ``unchanged``."""
    if status not in TRACKING_STATUS_CODES:
        status = "unknown"
    ret = Return.objects.filter(pk=return_id).only("pk", "tracking_status", "picked_up_at").first()
    if ret is None:
        return "unchanged"
    changed = (
        Return.objects.filter(pk=return_id)
        .exclude(tracking_status=status)
        .update(tracking_status=status, updated_at=timezone.now())
    )
    if status not in NOT_YET_PICKED_UP and ret.picked_up_at is None:
        return_pickup(return_id=return_id, actor=Actor.carrier(carrier or "carrier"))
        return "picked_up"
    return "changed" if changed else "unchanged"


def return_track_poll(*, return_id: int) -> str:
    """Ask one return parcel's carrier where it is; the outcome (``skipped``, ``retry``,
    ``failed``, or what ``return_tracking_apply`` did)."""
    ret = Return.objects.filter(pk=return_id).first()
    if (ret is None or ret.status != ReturnStatus.AUTHORIZED or not ret.tracking_number
            or ret.picked_up_at is not None):  # fmt: skip
        return "skipped"
    carrier = ret.label_carrier or "local"
    try:
        # The local carrier's simulator tells the story from the label's day (its drop-off).
        tracking: Tracking = get_carrier(carrier).track(
            ret.tracking_number, shipped_at=ret.authorized_at
        )
    except CarrierError as exc:
        log.warning("return_tracking.carrier_failed", return_id=return_id, carrier=carrier,
                    retryable=exc.retryable, error=type(exc).__name__)  # fmt: skip
        return "retry" if exc.retryable else "failed"
    outcome = return_tracking_apply(return_id=return_id, status=tracking.status, carrier=carrier)
    log.info("return_tracking.polled", return_id=return_id, carrier=carrier, outcome=outcome,
             status=tracking.status)  # fmt: skip
    return outcome


def return_tracking_poll_round(*, limit: int = 500) -> dict[str, int]:
    """Poll every return parcel waiting for its pickup; the count per outcome."""
    summary: dict[str, int] = {}
    for return_id in return_ids_to_poll(limit=limit):
        outcome = return_track_poll(return_id=return_id)
        summary[outcome] = summary.get(outcome, 0) + 1
    return summary


def return_for_tracking(carrier: str, tracking_number: str) -> Return | None:
    """The return whose label has this tracking number with this carrier, if any."""
    return (
        Return.objects.filter(label_carrier=carrier, tracking_number=tracking_number.strip())
        .order_by("-pk").first()
    )  # fmt: skip
