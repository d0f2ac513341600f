"""The customer's order status page: its link, what it shows, and its schema.org markup.

The link (``status_url(order)``) carries a token signed with ``TimestampSigner`` under its own
salt over the order's id: ``<order id>.<timestamp>.<signature>``. Nothing is stored, the
signature makes it non-guessable (an id alone, or another order's id with this signature, is
refused), and it stops working ``STATUS_LINK_MAX_AGE_DAYS`` after it was made (each email makes
its own). A new ``SECRET_KEY`` ends every link. The id is readable in the token: it is an
internal row number, not personal data, and it opens nothing without the signature.

``order_status_page(order_id=...)`` reads everything the page shows in a fixed number of queries
(the order with its channel and customer, its lines, its parcels with their lines and tracking
events, the return policy), as plain data. Personal data stops at the customer's first name and
the destination city: no street, postal code, email, phone or last name ever reaches the page.

``status_jsonld(page)`` is the page's schema.org markup: one ``Order`` (``orderStatus`` from the
crosswalk below) and one ``ParcelDelivery`` per parcel; ``jsonld_script_text`` makes it safe
inside a ``<script>`` element.

Status crosswalk (our tracking vocabulary -> schema.org ``OrderStatus``): pre_transit and
unknown -> OrderProcessing; in_transit, out_for_delivery -> OrderInTransit;
available_for_pickup -> OrderPickupAvailable; delivered -> OrderDelivered; failed_attempt,
exception, cancelled -> OrderProblem; return_to_sender -> OrderReturned. A cancelled order is
OrderCancelled, one still waiting for its payment before anything shipped OrderPaymentDue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db.models import Prefetch
from django.urls import reverse
from django.utils import dateformat, timezone

from fulfillment.carriers.base import TRACKING_STATUSES, web_link
from fulfillment.models import (
    ReturnLine,
    ReturnPolicy,
    ReturnReason,
    ReturnStatus,
    Shipment,
    ShipmentStatus,
    TrackingEvent,
)
from fulfillment.returns import RETURNABLE_ORDER_STATES
from fulfillment.selectors import return_policy_for
from orders.models import PRE_SHIP_STATES, Order, OrderLine, OrderStatus, PaymentStatus

SALT = "fulfillment.status_page.order"
SH = ShipmentStatus
RS = ReturnStatus
# Parcels the customer hears about: handed to the carrier, whatever happened since. Drafts and
# labels not handed over yet are still "being prepared" (their lines show as not shipped).
PARCEL_STATES = (SH.SHIPPED, SH.IN_TRANSIT, SH.EXCEPTION, SH.DELIVERED, SH.RETURNED)
TOKEN_MAX_LENGTH = 200
# What the page reads of an order (its amounts, payloads and risk data are never loaded).
ORDER_FIELDS = (
    "pk", "order_number", "external_id", "placed_at", "status", "payment_status",
    "shipping_address", "ship_to_country", "channel_id", "customer_id",
    "channel__name", "channel__slug", "customer__name",
)  # fmt: skip

SCHEMA = "https://schema.org/"
TRACKING_WORDS = dict(TRACKING_STATUSES)
SCHEMA_STATUS_FOR_TRACKING = {
    "unknown": "OrderProcessing",
    "pre_transit": "OrderProcessing",
    "in_transit": "OrderInTransit",
    "out_for_delivery": "OrderInTransit",
    "available_for_pickup": "OrderPickupAvailable",
    "delivered": "OrderDelivered",
    "failed_attempt": "OrderProblem",
    "exception": "OrderProblem",
    "cancelled": "OrderProblem",
    "return_to_sender": "OrderReturned",
}
# The order's status in words (the page's heading).
ORDER_WORDS = {
    "OrderProcessing": "Being prepared",
    "OrderInTransit": "On its way",
    "OrderDelivered": "Delivered",
    "OrderPickupAvailable": "Ready for pickup",
    "OrderProblem": "A delivery problem: we are looking into it",
    "OrderReturned": "Returned to us",
    "OrderCancelled": "Cancelled",
    "OrderPaymentDue": "Waiting for payment",
}
# What a carrier code is called when the carrier did not name the company delivering it.
CARRIER_NAMES = {"local": "Local courier", "easypost": "Carrier"}


# --- the link ------------------------------------------------------------------------------------
def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT, sep=".")


def status_token(order_id: int) -> str:
    """A new token for the order's status page (valid ``STATUS_LINK_MAX_AGE_DAYS`` from now)."""
    return _signer().sign(str(int(order_id)))


def status_token_order_id(token: str) -> int | None:
    """The order id ``token`` was made for; None when it is not one of ours, was altered, or is
    older than ``STATUS_LINK_MAX_AGE_DAYS`` (the caller answers all of them the same way)."""
    if not token or len(token) > TOKEN_MAX_LENGTH:
        return None
    max_age = timedelta(days=settings.STATUS_LINK_MAX_AGE_DAYS)
    try:
        value = _signer().unsign(token, max_age=max_age)
    except signing.BadSignature:  # SignatureExpired is one too
        return None
    return int(value) if value.isascii() and value.isdigit() else None


def status_path(order_id: int) -> str:
    return reverse("order-status", args=[status_token(order_id)])


def absolute_url(path: str) -> str:
    return f"{str(settings.PUBLIC_BASE_URL).rstrip('/')}{path}"


def status_url(order: Order | int) -> str:
    """The absolute link to the order's status page (``PUBLIC_BASE_URL`` + a fresh token)."""
    order_id = order if isinstance(order, int) else order.pk
    return absolute_url(status_path(order_id))


# --- what the page shows -------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    title: str
    sku: str
    quantity: int


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    status: str
    words: str
    message: str
    location: str


@dataclass(frozen=True)
class Parcel:
    number: int  # 1, 2, ... in the order they left
    anchor: str  # the element id on the page
    tracking_number: str
    carrier_code: str
    carrier: str  # the company delivering it, in words
    carrier_link: str  # the carrier's tracking page: https only (web_link), else ""
    service_level: str
    state: str  # in words
    schema_status: str  # the crosswalk's OrderStatus name
    tracking_status: str
    shipped_at: datetime | None
    delivered_at: datetime | None
    expected_from: datetime | None
    expected_until: datetime | None
    last_event_at: datetime | None
    items: list[Item] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)  # newest first

    @property
    def eta(self) -> str:
        """The carrier's estimated arrival in words ("" once arrived, or without one)."""
        if not self.shows_eta:
            return ""
        start, end = self.expected_from, self.expected_until
        if start is not None and end is not None and _day(start) != _day(end):
            return f"between {_day(start, 'j F')} and {_day(end)}"
        if start is not None and end is not None:
            return f"on {_day(end)}"
        return f"by {_day(end)}" if end is not None else f"from {_day(start)}"

    @property
    def shows_eta(self) -> bool:
        """Still on its way (not delivered, not returned) and the carrier gave an estimate."""
        on_its_way = self.schema_status not in ("OrderDelivered", "OrderReturned")
        return on_its_way and (self.expected_from is not None or self.expected_until is not None)


@dataclass(frozen=True)
class ReturnInfo:
    policy_name: str
    window_days: int
    conditions: str
    how_to_start: str
    delivered_on: datetime | None  # the last parcel's delivery, when all arrived
    open_until: datetime | None  # delivered_on + window
    window_open: bool  # False once open_until has passed


@dataclass(frozen=True)
class StatusPage:
    order_id: int
    order_number: str
    placed_at: datetime
    shop_name: str
    first_name: str
    city: str
    country: str
    status: str  # schema.org OrderStatus name
    status_words: str
    cancelled: bool
    items: list[Item]
    parcels: list[Parcel]
    not_shipped: list[Item]
    returns: ReturnInfo | None
    rmas: list[ReturnSummary]  # the order's returns, newest first
    can_start_return: bool  # shipped, inside the window: the page offers the return form


# --- the order's returns -----------------------------------------------------------------------
# A return's state as the customer reads it.
STATE_WORDS = {
    RS.REQUESTED: "Received: we are reviewing it",
    RS.AUTHORIZED: "Accepted: send the items back with the label",
    RS.RECEIVED: "The items are back with us",
    RS.REFUNDED: "Refunded",
    RS.CLOSED: "Done",
    RS.REJECTED: "Not accepted",
}
NEXT_STEP = {
    RS.REQUESTED: "Our customer service will look at it and email you.",
    RS.AUTHORIZED: "Your return label is on its way by email; you can also download it here.",
    RS.RECEIVED: "We are checking the items; the refund follows.",
    RS.REFUNDED: "The money is on its way back to how you paid.",
    RS.CLOSED: "",
    RS.REJECTED: "We have emailed you why.",
}


@dataclass(frozen=True)
class ReturnItem:
    title: str
    quantity: int
    reason: str


@dataclass(frozen=True)
class ReturnSummary:
    rma_number: str
    status: str
    words: str
    next_step: str
    requested_at: Any
    has_label: bool
    resolution: str
    refunded: str  # "12.50 USD" once refunded, else ""
    items: list[ReturnItem] = field(default_factory=list)


def returns_of(order_id: int) -> list[ReturnSummary]:
    """The order's returns, newest first, in one query (their lines with the return and its
    refund joined; a label is known from its tracking number or link, never read)."""
    rows = (
        ReturnLine.objects.filter(ret__order_id=order_id)
        .select_related("ret", "ret__refund", "order_line")
        .only(
            "pk", "quantity", "reason", "sku", "order_line__title",
            "ret__id", "ret__rma_number", "ret__status", "ret__requested_at", "ret__resolution",
            "ret__tracking_number", "ret__label_url", "ret__refund__amount",
            "ret__refund__currency", "ret__refund__status",
        )
        .order_by("-ret__requested_at", "-ret__pk", "pk")
    )  # fmt: skip
    found: dict[int, ReturnSummary] = {}
    for row in rows:
        ret = row.ret
        summary = found.get(ret.pk)
        if summary is None:
            refund = ret.refund
            refunded = (
                f"{refund.amount} {refund.currency}"
                if refund is not None and ret.status in (RS.REFUNDED, RS.CLOSED) else ""
            )  # fmt: skip
            summary = found[ret.pk] = ReturnSummary(
                rma_number=ret.rma_number, status=ret.status,
                words=STATE_WORDS.get(ret.status, ret.get_status_display()),
                next_step=NEXT_STEP.get(ret.status, ""), requested_at=ret.requested_at,
                has_label=ret.status == RS.AUTHORIZED
                and bool(ret.tracking_number or ret.label_url),
                resolution=ret.get_resolution_display(), refunded=refunded,
            )  # fmt: skip
        summary.items.append(
            ReturnItem(title=row.order_line.title or row.sku, quantity=row.quantity,
                       reason=ReturnReason(row.reason).label)
        )  # fmt: skip
    return list(found.values())


def _day(value: datetime | None, fmt: str = "j F Y") -> str:
    return dateformat.format(timezone.localtime(value), fmt) if value is not None else ""


def first_name(name: str) -> str:
    """The first word of a customer's name; nothing for a pseudonym left by a redaction."""
    name = (name or "").strip()
    if not name or name.startswith("redacted "):
        return ""
    return name.split()[0]


def parcel_schema_status(shipment: Shipment) -> str:
    """The crosswalk's ``OrderStatus`` of one parcel, from its state and latest tracking."""
    if shipment.status == SH.DELIVERED:
        return "OrderDelivered"
    if shipment.status == SH.RETURNED:
        return "OrderReturned"
    if shipment.status == SH.EXCEPTION:
        return "OrderProblem"
    mapped = SCHEMA_STATUS_FOR_TRACKING.get(shipment.tracking_status or "unknown")
    if shipment.status == SH.IN_TRANSIT and mapped in (None, "OrderProcessing"):
        return "OrderInTransit"
    return mapped or "OrderProcessing"


def parcel_words(shipment: Shipment) -> str:
    if shipment.status == SH.DELIVERED:
        return TRACKING_WORDS["delivered"]
    if shipment.status == SH.RETURNED:
        return "Returned to us"
    status = shipment.tracking_status
    if shipment.status == SH.SHIPPED and status in ("", "unknown", "pre_transit"):
        return "Handed to the carrier"
    return TRACKING_WORDS.get(status) or shipment.get_status_display()


def carrier_words(shipment: Shipment) -> str:
    if shipment.carrier_name:
        return shipment.carrier_name
    code = shipment.carrier or ""
    return CARRIER_NAMES.get(code, code.replace("_", " ").title() or "Carrier")


def order_schema_status(order: Order, parcels: list[Parcel], not_shipped: list[Item]) -> str:
    """The order's ``OrderStatus``: cancelled, then a parcel's problem, then all returned, then
    delivered, pickup, on its way, waiting for payment, and otherwise being prepared."""
    if order.status == OrderStatus.CANCELLED:
        return "OrderCancelled"
    statuses = [p.schema_status for p in parcels]
    if "OrderProblem" in statuses:
        return "OrderProblem"
    if statuses and all(s == "OrderReturned" for s in statuses):
        return "OrderReturned"
    if order.status in (OrderStatus.DELIVERED, OrderStatus.CLOSED):
        return "OrderDelivered"
    arrived = {"OrderDelivered", "OrderReturned"}
    if statuses and not not_shipped and all(s in arrived for s in statuses):
        return "OrderDelivered"
    if "OrderPickupAvailable" in statuses:
        return "OrderPickupAvailable"
    if "OrderInTransit" in statuses:
        return "OrderInTransit"
    if order.payment_status == PaymentStatus.PENDING and order.status in PRE_SHIP_STATES:
        return "OrderPaymentDue"
    return "OrderProcessing"


def _returns(policy: ReturnPolicy | None, parcels: list[Parcel], status: str) -> ReturnInfo | None:
    if policy is None or status == "OrderCancelled":
        return None
    delivered = [p.delivered_at for p in parcels if p.delivered_at is not None]
    all_arrived = bool(parcels) and len(delivered) == len(parcels)
    delivered_on = max(delivered) if all_arrived else None
    open_until = delivered_on + timedelta(days=policy.window_days) if delivered_on else None
    return ReturnInfo(
        policy_name=policy.name, window_days=policy.window_days, conditions=policy.conditions,
        how_to_start=policy.how_to_start, delivered_on=delivered_on, open_until=open_until,
        window_open=open_until is None or open_until >= timezone.now(),
    )  # fmt: skip


def order_status_page(*, order_id: int) -> StatusPage | None:
    """Everything the status page shows for one order (None: no such order), in six queries,
    seven once it has shipped (its returns)."""
    order = (
        Order.objects.select_related("channel", "customer")
        .only(*ORDER_FIELDS)
        .filter(pk=order_id)
        .first()
    )
    if order is None:
        return None
    lines = list(
        OrderLine.objects.filter(order_id=order.pk)
        .only("pk", "order_id", "line_no", "sku", "title", "quantity")
        .order_by("line_no", "pk")
    )
    by_id = {line.pk: line for line in lines}
    shipments = list(
        Shipment.objects.filter(order_id=order.pk, status__in=PARCEL_STATES)
        .defer("label_pdf", "label_zpl", "flags")  # the label is not the customer's to read
        .order_by("shipped_at", "pk")
        .prefetch_related(
            "lines",
            Prefetch(
                "tracking_events",
                queryset=TrackingEvent.objects.only(
                    "pk", "shipment_id", "status", "message", "location", "occurred_at"
                ).order_by("-occurred_at", "-pk"),
            ),
        )
    )
    shipped_qty: dict[int, int] = {}
    parcels = []
    for number, shipment in enumerate(shipments, start=1):
        items = []
        for sl in shipment.lines.all():
            shipped_qty[sl.order_line_id] = shipped_qty.get(sl.order_line_id, 0) + sl.quantity
            line = by_id.get(sl.order_line_id)
            items.append(Item(title=_title(line, sl.sku), sku=sl.sku, quantity=sl.quantity))
        history = [
            HistoryEntry(at=e.occurred_at, status=e.status,
                         words=TRACKING_WORDS.get(e.status, e.status), message=e.message,
                         location=e.location)
            for e in shipment.tracking_events.all()
        ]  # fmt: skip
        parcels.append(
            Parcel(
                number=number, anchor=f"parcel-{number}",
                tracking_number=shipment.tracking_number, carrier_code=shipment.carrier,
                carrier=carrier_words(shipment), carrier_link=web_link(shipment.tracking_url),
                service_level=shipment.service_level, state=parcel_words(shipment),
                schema_status=parcel_schema_status(shipment),
                tracking_status=shipment.tracking_status, shipped_at=shipment.shipped_at,
                delivered_at=shipment.delivered_at if shipment.status == SH.DELIVERED else None,
                expected_from=shipment.estimated_delivery_from,
                expected_until=shipment.estimated_delivery_until,
                last_event_at=shipment.last_event_at, items=items, history=history,
            )
        )  # fmt: skip
    cancelled = order.status == OrderStatus.CANCELLED
    not_shipped = [] if cancelled else [
        Item(title=_title(line, line.sku), sku=line.sku,
             quantity=line.quantity - shipped_qty.get(line.pk, 0))
        for line in lines if line.quantity > shipped_qty.get(line.pk, 0)
    ]  # fmt: skip
    status = order_schema_status(order, parcels, not_shipped)
    info = _returns(return_policy_for(channel_id=order.channel_id), parcels, status)
    # Returns exist only for orders that shipped: no query for the others.
    returnable = order.status in RETURNABLE_ORDER_STATES
    address = order.shipping_address if isinstance(order.shipping_address, dict) else {}
    return StatusPage(
        order_id=order.pk,
        order_number=order.order_number or order.external_id,
        placed_at=order.placed_at,
        shop_name=order.channel.name or order.channel.slug,
        first_name=first_name(order.customer.name if order.customer else ""),
        city=str(address.get("city") or ""),
        country=str(address.get("country_code") or order.ship_to_country or ""),
        status=status,
        status_words=ORDER_WORDS[status],
        cancelled=cancelled,
        items=[Item(title=_title(line, line.sku), sku=line.sku, quantity=line.quantity)
               for line in lines],
        parcels=parcels,
        not_shipped=not_shipped,
        returns=info,
        rmas=returns_of(order.pk) if returnable else [],
        can_start_return=returnable and (info is None or info.window_open),
    )  # fmt: skip


def _title(line: Any, sku: str) -> str:
    return (line.title if line is not None else "") or sku or "Item"


# --- schema.org ----------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _product(item: Item) -> dict[str, Any]:
    product: dict[str, Any] = {"@type": "Product", "name": item.title}
    if item.sku:
        product["sku"] = item.sku
    return product


def status_jsonld(page: StatusPage, *, url: str) -> dict[str, Any]:
    """The page's schema.org graph: the ``Order`` and one ``ParcelDelivery`` per parcel.
    ``url`` is the page's own absolute address (ids of the nodes, and the tracking page of a
    parcel whose carrier has none of its own)."""
    order_id = f"{url}#order"
    merchant = {"@type": "Organization", "name": page.shop_name}
    destination: dict[str, Any] = {"@type": "PostalAddress"}
    if page.city:
        destination["addressLocality"] = page.city
    if page.country:
        destination["addressCountry"] = page.country
    order: dict[str, Any] = {
        "@type": "Order",
        "@id": order_id,
        "url": url,
        "orderNumber": page.order_number,
        "orderDate": _iso(page.placed_at),
        "orderStatus": SCHEMA + page.status,
        "merchant": merchant,
        "orderedItem": [
            {"@type": "OrderItem", "orderQuantity": item.quantity, "orderedItem": _product(item)}
            for item in page.items
        ],
    }
    parcels = []
    for parcel in page.parcels:
        node: dict[str, Any] = {
            "@type": "ParcelDelivery",
            "@id": f"{url}#{parcel.anchor}",
            "trackingNumber": parcel.tracking_number,
            # The carrier's own page when it has one; ours (this page) otherwise.
            "trackingUrl": parcel.carrier_link or f"{url}#{parcel.anchor}",
            "provider": {"@type": "Organization", "name": parcel.carrier},
            "hasDeliveryMethod": SCHEMA + "ParcelService",
            "deliveryAddress": destination,
            "deliveryStatus": {
                "@type": "DeliveryEvent",
                "name": parcel.state,
                "identifier": SCHEMA + parcel.schema_status,  # the crosswalk, per parcel
            },
            "itemShipped": [_product(item) for item in parcel.items],
            "partOfOrder": {"@type": "Order", "@id": order_id, "orderNumber": page.order_number,
                            "merchant": merchant},
        }  # fmt: skip
        latest = parcel.history[0] if parcel.history else None
        if latest is not None:
            node["deliveryStatus"]["startDate"] = _iso(latest.at)
            if latest.message:
                node["deliveryStatus"]["description"] = latest.message
            if latest.location:
                node["deliveryStatus"]["location"] = {"@type": "Place", "name": latest.location}
        if parcel.expected_from is not None:
            node["expectedArrivalFrom"] = _iso(parcel.expected_from)
        if parcel.expected_until is not None:
            node["expectedArrivalUntil"] = _iso(parcel.expected_until)
        parcels.append(node)
    if parcels:
        order["orderDelivery"] = [{"@id": p["@id"]} for p in parcels]
    return {"@context": "https://schema.org", "@graph": [order, *parcels]}


# json.dumps escapes none of these; inside <script> "</script>" or "<!--" would end or change
# the element. As JSON escapes they mean the same characters to a JSON parser.
_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026",
                   0x2028: "\\u2028", 0x2029: "\\u2029"}  # fmt: skip


def jsonld_script_text(data: dict[str, Any]) -> str:
    """``data`` as JSON that is safe as the text of a ``<script type="application/ld+json">``."""
    return json.dumps(data, ensure_ascii=False, sort_keys=False).translate(_SCRIPT_ESCAPES)
