"""The outbox adapter for ``label_purchase`` actions: buy a shipment's label with its carrier.

Registered per carrier code (the action's target) from ``FulfillmentConfig.ready()``. It goes
through ``shipment_buy_label``, which calls the carrier outside any transaction with the
shipment's own reference as idempotency key and records the label with a compare-and-set, so a
retried action never buys a second label.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from fulfillment.carriers.base import CarrierError
from fulfillment.downstream.base import DownstreamError
from fulfillment.models import OutboundAction, Shipment, ShipmentStatus
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipment_void
from orders.actors import Actor
from orders.errors import TransitionRefused
from orders.models import Order, OrderStatus


class LabelPurchaseAdapter:
    """``label_purchase`` actions (target: the carrier code): buy the shipment's label, and with
    ``FULFILLMENT_AUTO_SHIP`` hand it to the carrier at once (the demo and the benchmark, where
    no warehouse scans parcels out). Carrier errors keep their retryable verdict."""

    def __init__(self, target: str) -> None:
        self.target = target

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        shipment_id = (action.payload or {}).get("shipment_id")
        if not shipment_id:
            raise DownstreamError(f"action {action.pk} names no shipment", retryable=False)
        actor = Actor.system("outbox")
        try:
            shipment = shipment_buy_label(shipment_id=int(shipment_id), actor=actor)
        except CarrierError as exc:
            raise DownstreamError(f"{self.target}: {exc}", retryable=exc.retryable,
                                  status=exc.status) from exc  # fmt: skip
        except Shipment.DoesNotExist as exc:
            raise DownstreamError(
                f"shipment {shipment_id} does not exist", retryable=False
            ) from exc
        if shipment.status == ShipmentStatus.VOIDED:
            return {"shipment_id": shipment.pk, "voided": True}
        if settings.FULFILLMENT_AUTO_SHIP and (shipment.status == ShipmentStatus.LABEL_PURCHASED):
            try:
                shipment = shipment_ship(shipment_id=shipment.pk, actor=actor)
            except TransitionRefused as exc:
                return self._not_shipped(shipment, exc, actor)
        return {"shipment_id": shipment.pk, "tracking_number": shipment.tracking_number,
                "status": shipment.status}  # fmt: skip

    def _not_shipped(
        self, shipment: Shipment, refusal: TransitionRefused, actor: Actor
    ) -> dict[str, Any]:
        """The order was cancelled while its label was bought (a channel's cancel arriving
        then): the label is voided, the carrier refunds it, and the action is done."""
        order_status = Order.objects.values_list("status", flat=True).get(pk=shipment.order_id)
        if order_status != OrderStatus.CANCELLED:
            raise refusal
        shipment = shipment_void(shipment_id=shipment.pk, actor=actor)
        return {"shipment_id": shipment.pk, "voided": True, "reason": "order_cancelled"}
