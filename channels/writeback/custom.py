"""Custom storefronts' tracking write-back: a signed callback per shipment event.

``POST`` to the channel's ``tracking_callback_url`` with a JSON body
(``channels/schemas/custom_shipment_event.v1.json``: the order's external id, our shipment
reference, status, tracking number and URL, carrier, lines, when it happened, the estimated
delivery window; no personal data) signed the way the storefront signs the webhooks it sends
us: ``X-Signature: t=<unix>,v1=<hex HMAC-SHA256(webhook secret, "<t>.<raw body>")>``
(``channels.signatures.sign_custom``). ``Idempotency-Key`` is the outbox action's key, the
same on every attempt: a storefront that saw it already answers 2xx and does nothing.

2xx: done. A 4xx other than 408/425/429: refused (dead action, ``channel_sync_failed``). The rest
is retried by the outbox (never inside the session: the storefront may have processed it).
Every status is told: the storefront decides what it shows.
"""

from __future__ import annotations

import json
import time
from typing import Any

import structlog

from channels import signatures
from channels.writeback import (
    Writeback,
    WritebackChannel,
    WritebackError,
    call,
    session,
    timestamp,
)
from orders.feedback import ShipmentUpdate

log = structlog.get_logger(__name__)

KIND = "custom"
SCHEMA = "custom_shipment_event.v1.json"
SIGNATURE_HEADER = "X-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
NEEDS = "a tracking callback URL and a webhook secret"


def callback_ready(channel: WritebackChannel) -> bool:
    """Whether the channel has somewhere to call and a secret to sign with."""
    return bool(channel.callback_url and channel.config.secret)


def event_body(update: ShipmentUpdate) -> dict[str, Any]:
    """The callback's body (``custom_shipment_event.v1.json``)."""
    return {
        "schema_version": 1,
        "id": update.idempotency_key,
        "topic": "shipment.created" if not update.channel_ref else "shipment.updated",
        "occurred_at": timestamp(update.occurred_at or update.shipped_at),
        "order": {
            "external_id": update.order_external_id,
            "order_number": update.order_number,
            "fully_shipped": update.order_complete,
        },
        "shipment": {
            "reference": update.reference,
            "status": update.status,
            "carrier": update.carrier,
            "carrier_name": update.carrier_name,
            "service": update.service,
            "tracking_number": update.tracking_number,
            "tracking_url": update.tracking_url,
            "shipped_at": timestamp(update.shipped_at),
            "estimated_delivery": {
                "from": timestamp(update.estimated_delivery_from),
                "until": timestamp(update.estimated_delivery_until),
            },
            "lines": [
                {"external_line_id": line.external_line_id, "sku": line.sku,
                 "quantity": line.quantity}
                for line in update.lines
            ],
        },
    }  # fmt: skip


class CustomWriteback(Writeback):
    kind = KIND
    needs = NEEDS

    def ready(self, channel: WritebackChannel) -> bool:
        return callback_ready(channel)

    def tells(self, status: str) -> bool:
        return True

    def send(self, channel: WritebackChannel, update: ShipmentUpdate) -> dict[str, Any]:
        config = channel.config
        if not update.idempotency_key:
            raise WritebackError("the update has no idempotency key", retryable=False)
        raw = json.dumps(event_body(update), separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signatures.sign_custom(
                secret=config.secret, body=raw, timestamp=int(time.time())
            ),
            IDEMPOTENCY_HEADER: update.idempotency_key,
        }
        with session(config) as http:
            response = call(
                http, "POST", channel.callback_url,
                what="storefront tracking callback", data=raw, headers=headers,
            )  # fmt: skip
            status = response.status_code
            response.close()
        log.info("custom_writeback.pushed", channel_id=config.id, status=status)
        return {"channel_ref": update.reference, "callback_status": status}
