"""The built-in local WMS: a ``PickTask`` (a pick list for one warehouse) per action.

``get_or_create`` on the idempotency key, backed by its unique constraint, so a retry, a
duplicate message or a stale worker finds the first pick task instead of making a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from fulfillment.downstream.base import DownstreamError, pick_lines, warehouse_of

if TYPE_CHECKING:
    from fulfillment.models import OutboundAction

log = structlog.get_logger(__name__)


class LocalWMSAdapter:
    target = "local"

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        from fulfillment.models import PickTask

        if not action.order_id:
            raise DownstreamError(f"action {action.pk} has no order to pick", retryable=False)
        warehouse = warehouse_of(action)
        task, created = PickTask.objects.get_or_create(
            idempotency_key=action.idempotency_key,
            defaults={
                "order_id": action.order_id,
                "warehouse": warehouse,
                "lines": pick_lines(action),
            },
        )
        log.info("wms_local.pick_task", action_id=action.pk, pick_task_id=task.pk, created=created)
        return {"pick_task_id": task.pk, "created": created, "warehouse": warehouse.code}
