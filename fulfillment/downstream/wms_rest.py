"""Warehouse tasking through a generic REST WMS / 3PL API.

``POST {WMS_API_BASE}/tasks`` with a JSON pick task and an ``Idempotency-Key`` header (our
action's idempotency key), the convention most modern WMS and 3PL APIs follow (and the IETF
draft "The Idempotency-Key HTTP Header Field"): the WMS answers a repeat with the first task,
or with ``409 Conflict``, which we take as "already done". ``WMS_API_TOKEN``, when set, goes in
``Authorization: Bearer``.

The ship-to address is read from the order at send time and sent (the warehouse needs it on the
packing slip); it is never stored in the action, its result or a log line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from django.conf import settings

from fulfillment.downstream.base import (
    DownstreamError,
    order_of,
    pick_lines,
    warehouse_of,
)
from fulfillment.downstream.http import session_for

if TYPE_CHECKING:
    from fulfillment.models import OutboundAction

log = structlog.get_logger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"


class RestWMSAdapter:
    target = "rest"

    def __init__(self, *, api_base: str, token: str = "") -> None:
        self.api_base = api_base.rstrip("/")
        self.token = token

    @classmethod
    def from_settings(cls) -> RestWMSAdapter:
        return cls(api_base=settings.WMS_API_BASE, token=settings.WMS_API_TOKEN)

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        if not self.api_base:
            raise DownstreamError("the REST WMS is not configured (WMS_API_BASE)", retryable=False)
        order = order_of(action)
        warehouse = warehouse_of(action)
        body = {
            "reference": action.idempotency_key,
            "order_id": order.pk,
            "order_ref": order.order_number or order.external_id,
            "warehouse": warehouse.code,
            "shipment_id": (action.payload or {}).get("shipment_id"),
            "lines": pick_lines(action),
            "ship_to": order.shipping_address,
        }
        headers = {IDEMPOTENCY_HEADER: action.idempotency_key, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        with session_for(self.target) as session:
            response = session.call(
                "POST", f"{self.api_base}/tasks", what="wms create task", json=body,
                headers=headers, accept=(409,),
            )  # fmt: skip
            if response.status_code == 409:
                log.info("wms_rest.already_done", action_id=action.pk)
                return {"task_id": "", "already_done": True}
            try:
                answer = response.json() if response.content else {}
            except ValueError:
                answer = {}
        task_id = str(answer.get("id") or answer.get("task_id") or "") if isinstance(
            answer, dict
        ) else ""  # fmt: skip
        log.info("wms_rest.task_created", action_id=action.pk, task_id=task_id)
        return {"task_id": task_id, "already_done": False}
