"""What the feedback loop tells a sales channel about a parcel, and the registry of the channel
write-backs that tell it.

``fulfillment`` knows the parcels, ``channels`` knows how each store wants to hear about them,
and neither imports the other (the dependency rule): ``fulfillment``'s outbox adapter for
``channel_tracking_sync`` builds a ``ShipmentUpdate`` (plain data, no models) and hands it to
the write-back registered here for the order's channel kind; ``channels`` registers one per
kind from its ``ready()``.

A write-back is idempotent on ``ShipmentUpdate.reference`` (our shipment's stable reference)
and ``channel_ref`` (what the channel called our parcel the first time): a retry after an
ambiguous failure finds what the first attempt made instead of making a second. It returns a
small PII-free result whose ``channel_ref`` is kept on the shipment, and raises an
``IntegrationError`` (``retryable`` or not) when the channel fails or refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from django.db.models import Model

from config.integrations import IntegrationError
from config.registry import Registry


@dataclass(frozen=True)
class ShipmentUpdateLine:
    """One order line's units in the parcel. ``external_line_id``: the channel's line id."""

    external_line_id: str
    sku: str
    quantity: int
    line_no: int = 0
    channel_sku: str = ""
    variant_ref: str = ""


@dataclass(frozen=True)
class ShipmentUpdate:
    """One change of one parcel, as a channel hears it.

    ``status`` is ours (``fulfillment.tracking.TrackingStatus``): ``pre_transit`` when the
    parcel left the warehouse, then ``in_transit``, ``out_for_delivery``,
    ``available_for_pickup``, ``delivered``, ``failed_attempt``, ``exception``,
    ``return_to_sender``... ``first``: this is the parcel's first write-back (the channel has
    no record of it yet; ``channel_ref`` is empty). ``order_complete``: every unit of the order
    has shipped.
    """

    channel_id: int
    order_external_id: str
    order_number: str
    order_source: dict[str, Any]
    reference: str  # "shipment-<id>": stable, sent to channels that take a reference
    channel_ref: str  # the channel's id for this parcel from an earlier write-back, or ""
    lines: tuple[ShipmentUpdateLine, ...]
    carrier: str  # our carrier code (local, easypost)
    carrier_name: str  # the company a customer knows (USPS, UPS, "Local Courier")
    service: str
    tracking_number: str
    tracking_url: str
    status: str
    message: str = ""
    occurred_at: datetime | None = None
    estimated_delivery_from: datetime | None = None
    estimated_delivery_until: datetime | None = None
    shipped_at: datetime | None = None
    order_complete: bool = False
    event_id: int | None = None
    idempotency_key: str = ""
    correlation_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ChannelWriteback(Protocol):
    kind: str

    def configured(self, channel_id: int | Model) -> bool:
        """Whether this channel can be told at all (API credentials, a callback URL, write-back
        switched on). A channel that cannot gets no action written: nothing waits to die.
        ``channel_id`` may be the channel's row the caller holds (read with its order): it is
        then not read again."""
        ...

    def tells(self, status: str) -> bool:
        """Whether a change to ``status`` is news this channel can take (BigCommerce keeps no
        delivery events, say). The parcel's first write-back (``pre_transit``, when it left)
        is always written; later changes only when this says yes."""
        ...

    def push(self, update: ShipmentUpdate) -> dict[str, Any]:
        """Tell the channel; return ``{"channel_ref": ..., ...}`` (no personal data)."""
        ...


class WritebackNotRegistered(IntegrationError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"no tracking write-back for channel kind {kind!r}", retryable=False)


def _missing(kind: str) -> Exception:
    return WritebackNotRegistered(kind)


WRITEBACKS: Registry[str, ChannelWriteback] = Registry("channel write-back", missing=_missing)


def register(kind: str, factory: Any) -> None:
    """Make ``factory()`` the write-back for channels of ``kind``."""
    WRITEBACKS.register(str(kind), factory)


def writeback_for(kind: str) -> ChannelWriteback | None:
    """The write-back for ``kind``, or None when no app registered one."""
    kind = str(kind)
    return WRITEBACKS.create(kind) if kind in WRITEBACKS else None


# --- refunds to the channel (fulfillment.refunds_out writes them; channels.writeback sends) ---
@dataclass(frozen=True)
class RefundPushLine:
    external_line_id: str
    quantity: int
    amount: Decimal  # goods, net of discount (ours)
    tax: Decimal
    restock: bool  # the units came back to stock (the channel's restock type "return")


@dataclass(frozen=True)
class RefundPush:
    """One refund of ours for the channel to carry out (it moves the customer's money).
    ``note`` carries our marker (``orders.refunds.marker``): the channel's own webhook about this
    refund then finds our row instead of recording the money twice."""

    channel_id: int
    order_external_id: str
    refund_id: int
    reference: str
    note: str
    currency: str
    amount: Decimal
    shipping: Decimal
    shipping_tax: Decimal
    lines: list[RefundPushLine]
    payments: list[tuple[str, Decimal]]  # (method or gateway, amount)
    idempotency_key: str
    correlation_id: str = ""


class ChannelRefunds(Protocol):
    kind: str

    def configured(self, channel_id: int) -> bool:
        """Whether this channel's API can be asked to refund (credentials set)."""
        ...

    def push_refund(self, push: RefundPush) -> dict[str, Any]:
        """Have the channel refund it; return ``{"channel_refund_id": ...}`` (no personal data).
        Raises ``IntegrationError`` (retryable or not) when it cannot."""
        ...


REFUND_WRITERS: Registry[str, ChannelRefunds] = Registry("channel refunds", missing=_missing)


def register_refunds(kind: str, factory: Any) -> None:
    """Make ``factory()`` what sends our refunds to channels of ``kind``."""
    REFUND_WRITERS.register(str(kind), factory)


def refund_writer_for(kind: str) -> ChannelRefunds | None:
    """What sends refunds to channels of ``kind``, or None: refund those by hand there."""
    kind = str(kind)
    return REFUND_WRITERS.create(kind) if kind in REFUND_WRITERS else None
