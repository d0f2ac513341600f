"""The outbox adapter for ``return_label`` actions: buy a return's label with its carrier.

Registered per carrier code (the action's target) from ``FulfillmentConfig.ready()``, like
``label_purchase``. It goes through ``fulfillment.return_labels.return_label_purchase``: the
carrier is called with the RMA number as the reference and the label is recorded once.
"""

from __future__ import annotations

from typing import Any

from fulfillment.carriers.base import CarrierError
from fulfillment.downstream.base import DownstreamError
from fulfillment.models import OutboundAction, Return
from fulfillment.return_labels import return_label_purchase, return_label_summary
from orders.actors import Actor
from orders.errors import InvalidInput


class ReturnLabelAdapter:
    """``return_label`` actions (target: the carrier code). Carrier errors keep their
    retryable verdict; a return without a warehouse or gone is a person's job."""

    def __init__(self, target: str) -> None:
        self.target = target

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        return_id = (action.payload or {}).get("return_id")
        if not return_id:
            raise DownstreamError(f"action {action.pk} names no return", retryable=False)
        try:
            ret = return_label_purchase(return_id=int(return_id), carrier_code=self.target,
                                        actor=Actor.system("outbox"))  # fmt: skip
        except CarrierError as exc:
            raise DownstreamError(f"{self.target}: {exc}", retryable=exc.retryable,
                                  status=exc.status) from exc  # fmt: skip
        except Return.DoesNotExist as exc:
            raise DownstreamError(f"return {return_id} does not exist", retryable=False) from exc
        except InvalidInput as exc:
            raise DownstreamError(str(exc), retryable=False) from exc
        return return_label_summary(ret)
