"""The polling fallback: ask the carrier about parcels that have been quiet for too long.

Webhooks are the way carriers tell us (``fulfillment.carrier_events``); they get lost (an
endpoint down for more than the carrier's retry window, a tracker nobody subscribed, a carrier
without webhooks: the local one). Beat's ``fulfillment.tracking_poll`` (every
``TRACKING_POLL_INTERVAL_SECONDS``, default 900) takes the parcels on their way that heard
nothing for ``TRACKING_POLL_QUIET_SECONDS`` (default 4 h; ``tracking.shipments_to_poll``,
quietest first, at most ``TRACKING_POLL_BATCH``) and rings one ``fulfillment.shipment_track_poll``
per parcel, so a slow carrier API holds one short task, never a long round.

One poll: ``get_carrier(shipment.carrier).track(number, shipped_at=...)`` with no transaction
open, then ``tracking.tracking_record(source="poll")`` (a repeat of what we know records
nothing). A retryable ``CarrierError`` (timeout, 429, 5xx) is counted and changes nothing: the
parcel stays quiet, so the next round asks again. A refusal that asking again cannot fix (the
carrier does not know the number, it is not configured here) is counted and logged, and the
parcel's ``last_tracked_at`` is set, so it waits one quiet period instead of heading every
round's batch.

Metrics: ``tracking_polls_total{carrier, outcome}`` with outcome ``changed`` (the shipment moved
or its told status changed), ``unchanged``, ``retry``, ``failed``, ``skipped`` (no longer on its
way). The ``poll_tracking`` command runs a round in the foreground with a progress bar. Return
parcels not picked up yet are polled in the same round (``fulfillment.returns_tracking``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog
from django.conf import settings
from django.utils import timezone
from prometheus_client import Counter

from fulfillment.carriers import get_carrier
from fulfillment.carriers.base import CarrierError
from fulfillment.models import Shipment, ShipmentStatus, TrackingSource
from fulfillment.tracking import shipments_to_poll, tracking_record

log = structlog.get_logger(__name__)

POLL_TASK = "fulfillment.shipment_track_poll"
OUTCOMES = ("changed", "unchanged", "retry", "failed", "skipped")
POLLABLE = (ShipmentStatus.SHIPPED, ShipmentStatus.IN_TRANSIT, ShipmentStatus.EXCEPTION)

POLLS = Counter("tracking_polls", "Carrier tracking polls by outcome", ["carrier", "outcome"])


def shipment_ids_to_poll(*, all_in_flight: bool = False, limit: int | None = None) -> list[int]:
    """This round's parcels: quiet for ``TRACKING_POLL_QUIET_SECONDS`` (every parcel on its way
    with ``all_in_flight``), quietest first, at most ``limit`` (``TRACKING_POLL_BATCH``)."""
    quiet = 0.0 if all_in_flight else settings.TRACKING_POLL_QUIET_SECONDS
    return list(shipments_to_poll(quiet_seconds=quiet, limit=limit or settings.TRACKING_POLL_BATCH))


def shipment_track_poll(*, shipment_id: int) -> str:
    """Ask one parcel's carrier and record the answer; the outcome (``OUTCOMES``)."""
    shipment = Shipment.objects.filter(pk=shipment_id).only(
        "pk", "carrier", "tracking_number", "status", "shipped_at"
    ).first()  # fmt: skip
    if shipment is None or shipment.status not in POLLABLE or not shipment.tracking_number:
        POLLS.labels(shipment.carrier if shipment else "unknown", "skipped").inc()
        return "skipped"
    carrier = shipment.carrier or "unknown"
    try:
        tracking = get_carrier(carrier).track(
            shipment.tracking_number, shipped_at=shipment.shipped_at
        )
    except CarrierError as exc:
        outcome = "retry" if exc.retryable else "failed"
        POLLS.labels(carrier, outcome).inc()
        # The error's words may quote the carrier; its class and status are enough here.
        log.warning("tracking_poll.carrier_failed", shipment_id=shipment_id, carrier=carrier,
                    tracking_number=shipment.tracking_number, retryable=exc.retryable,
                    error=type(exc).__name__, status=getattr(exc, "status", None))  # fmt: skip
        if not exc.retryable:
            # Asking again next round gives the same answer: wait one quiet period.
            Shipment.objects.filter(pk=shipment_id).update(last_tracked_at=timezone.now())
        return outcome
    result = tracking_record(shipment_id=shipment_id, tracking=tracking, source=TrackingSource.POLL)
    outcome = "changed" if result.applied_event_id is not None else "unchanged"
    POLLS.labels(carrier, outcome).inc()
    log.info("tracking_poll.polled", shipment_id=shipment_id, carrier=carrier, outcome=outcome,
             new_events=result.new_events, to_state=result.to_state)  # fmt: skip
    return outcome


def tracking_poll_round(
    *,
    all_in_flight: bool = False,
    limit: int | None = None,
    progress: Callable[[list[int]], Iterable[int]] | None = None,
) -> dict[str, Any]:
    """Poll this round's parcels here, one after the other (the ``poll_tracking`` command);
    the count per outcome and ``polled``."""
    ids = shipment_ids_to_poll(all_in_flight=all_in_flight, limit=limit)
    summary: dict[str, Any] = dict.fromkeys(OUTCOMES, 0)
    for shipment_id in progress(ids) if progress is not None else ids:
        summary[shipment_track_poll(shipment_id=shipment_id)] += 1
    summary["polled"] = len(ids)
    # Return parcels waiting for the carrier's pickup (fulfillment.returns_tracking).
    from fulfillment.returns_tracking import return_tracking_poll_round

    returns = return_tracking_poll_round()
    if returns:
        summary["returns"] = returns
    return summary
