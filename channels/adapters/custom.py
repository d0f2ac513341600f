"""Custom storefronts: they post our canonical order, signed like Stripe.

Body: ``{"id": "<event id>", "topic": "order.created" | "order.updated" | "order.cancelled",
"order": <canonical order v1>}``. Header ``X-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
"<t>.<raw body>")>``; the timestamp must be within 5 minutes. See docs/webhooks.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from channels import signatures
from channels.adapters.base import ChannelConfig, Delivery, NormalizationError
from orders import money
from orders.errors import InvalidInput

SIGNATURE_HEADER = "x-signature"
AMOUNT_KEYS = ("subtotal", "discount_total", "shipping_total", "tax_total", "shipping_tax",
               "total", "refunded_total")  # fmt: skip
LINE_AMOUNT_KEYS = ("unit_price", "discount", "tax")


class CustomStorefrontAdapter:
    kind = "custom"

    def verify(
        self, channel: ChannelConfig, headers: Mapping[str, str], body: bytes, *, now: datetime
    ) -> Delivery:
        sent_at = signatures.timestamped_hmac(
            secret=channel.secret, header_value=headers.get(SIGNATURE_HEADER), body=body, now=now
        )
        try:
            envelope = json.loads(body)
            event_id, topic = str(envelope["id"]), str(envelope.get("topic", ""))
        except (ValueError, KeyError, TypeError):
            # Signed but unreadable: keep it (keyed by its bytes) so processing quarantines it.
            from channels.services import body_dedup_key

            return Delivery(dedup_key=body_dedup_key(body), topic="", event_at=sent_at)
        return Delivery(dedup_key=f"event:{event_id}", topic=topic, event_at=sent_at)

    def payload_schema(self, topic: str, api_version: str) -> str:
        return "custom_order_event.v1.json"

    def fetch(self, channel: ChannelConfig, payload: Mapping[str, Any]) -> None:
        return None

    def cancelled_external_id(self, payload: Mapping[str, Any], topic: str) -> str | None:
        return None

    destructive_topics: Mapping[str, str] = MappingProxyType({})

    def confirm_cancel(
        self, channel: ChannelConfig, payload: Mapping[str, Any], topic: str
    ) -> bool | None:
        """No destructive topics to confirm: the topic is inside the signed body (and the
        signature is timestamped), so it cannot be swapped. Never asked."""
        return None

    def normalize(
        self, payload: Mapping[str, Any], channel: ChannelConfig, topic: str
    ) -> dict[str, Any]:
        order = dict(payload["order"])
        currency = str(order.get("currency", ""))
        try:
            money.validate_currency(currency)
            for key in AMOUNT_KEYS:
                if key in order:
                    order[key] = str(
                        money.quantize(order[key], currency, rounding=channel.rounding)
                    )
            lines = []
            for line in order.get("lines", []):
                line = dict(line)
                for key in LINE_AMOUNT_KEYS:
                    line[key] = str(money.quantize(line[key], currency, rounding=channel.rounding))
                lines.append(line)
            order["lines"] = lines
        except InvalidInput as exc:
            raise NormalizationError(
                [{"pointer": "/order", "message": str(exc), "value": None}]
            ) from None
        if topic == "order.cancelled":
            order["cancelled"] = True
        return order


adapter = CustomStorefrontAdapter()
