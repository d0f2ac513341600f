"""Refund-only deliveries (Shopify ``refunds/create``, BigCommerce ``store/order/refund/created``,
Amazon's refund events): the adapter reads the refund (``read_refund``, an optional method of
the channel adapter), ``orders.channel_refunds`` records it once.

A refund whose order has not arrived yet is retried later (the inbox's lease, as for a channel
API that is down); one that cannot be recorded (a line the order does not have, more than was
captured) is quarantined with the reason, and can be replayed once fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.adapters.base import AdapterError, ChannelConfig, NormalizationError
from channels.models import InboundEvent, SalesChannel
from orders.actors import Actor
from orders.channel_refunds import refund_from_channel
from orders.errors import DomainError, NotFound


def refund_of(
    adapter: Any, config: ChannelConfig, payload: Any, topic: str
) -> tuple[str, dict[str, Any]] | None:
    """(the order's external id, the canonical refund) of a refund-only delivery; None for
    every other topic and for adapters that read no refunds."""
    read = getattr(adapter, "read_refund", None)
    if read is None:
        return None
    result: tuple[str, dict[str, Any]] | None = read(config, payload, topic)
    return result


def refund_apply(
    *, event: InboundEvent, channel: SalesChannel, refund: tuple[str, Mapping[str, Any]]
) -> tuple[int | None, str]:
    order_external_id, canonical = refund
    try:
        result = refund_from_channel(
            channel_id=channel.pk, order_external_id=order_external_id, refund=canonical,
            actor=Actor.channel(channel.slug),
        )  # fmt: skip
    except NotFound as exc:
        raise AdapterError(str(exc), retryable=True) from None
    except DomainError as exc:
        raise NormalizationError(
            [{"pointer": "", "message": f"the refund could not be recorded: {exc}",
              "value": canonical.get("external_id")}]
        ) from None  # fmt: skip
    return result.refund.order_id, "refund_recorded" if result.created else "unchanged"
