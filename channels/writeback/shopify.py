"""Shopify tracking write-back (REST Admin API, ``/admin/api/{api_version}/``).

A parcel's first write-back creates one fulfillment:

1. ``GET orders/{order_id}/fulfillments.json``: a fulfillment of the order that already
   carries our tracking number is adopted (a retry after an ambiguous failure, a timeout whose
   create went through, finds it instead of making a second).
2. ``GET orders/{order_id}/fulfillment_orders.json``: our parcel's lines (``external_line_id``
   = Shopify's ``line_item_id``) and quantities are mapped to the line items of the fulfillment
   orders that are open (or in progress) and still have ``fulfillable_quantity``. One
   fulfillment cannot mix locations or delivery methods: the whole parcel must fit in the
   fulfillment orders of one location, else the push is refused in words.
3. ``POST fulfillments.json`` with ``line_items_by_fulfillment_order``, ``tracking_info``
   (number, url, company) and ``notify_customer`` (the channel's
   ``writeback_notify_customer``). Never repeated inside the session (see the package doc).

A later change (the shipment has the fulfillment's id as ``channel_ref``): the fulfillment is
read; when our tracking number or URL differ, ``POST fulfillments/{id}/update_tracking.json``
(never a second fulfillment). Then carrier news becomes a fulfillment event, ``POST
orders/{order_id}/fulfillments/{id}/events.json``, unless an event of that status and time is
already there (``GET`` the same path first). ``EVENT_STATUSES`` is what Shopify takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from channels.adapters.base import ChannelConfig
from channels.adapters.shopify import admin_api_ready, admin_headers, admin_url
from channels.writeback import (
    Writeback,
    WritebackChannel,
    WritebackError,
    call_json,
    numeric_id,
    parse_time,
    session,
    timestamp,
    whole_seconds,
)
from config.integrations import IntegrationSession
from orders.feedback import ShipmentUpdate, ShipmentUpdateLine

KIND = "shopify"
NEEDS = "an api_base_url, an api_version and an access_token in its credentials"
# Our tracking status -> Shopify's fulfillment event status. pre_transit is the fulfillment
# itself; a carrier's "cancelled" (the tracker was cancelled) is no news for the customer.
EVENT_STATUSES = {
    "in_transit": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "available_for_pickup": "ready_for_pickup",
    "failed_attempt": "attempted_delivery",
    "delivered": "delivered",
    "exception": "failure",
    "return_to_sender": "failure",
}
FULFILLABLE = frozenset({"open", "in_progress"})
GONE = frozenset({"cancelled", "error", "failure"})  # fulfillments that do not count
PAGE_LIMIT = 250


class ShopifyWriteback(Writeback):
    kind = KIND
    needs = NEEDS

    def ready(self, channel: WritebackChannel) -> bool:
        return admin_api_ready(channel.config)

    def tells(self, status: str) -> bool:
        return status in EVENT_STATUSES

    def send(self, channel: WritebackChannel, update: ShipmentUpdate) -> dict[str, Any]:
        order_id = numeric_id(update.order_external_id, "Shopify order id")
        with session(channel.config) as http:
            api = _Api(http, channel.config, order_id)
            result: dict[str, Any] = {"tracking_updated": False}
            if update.channel_ref:
                fulfillment_id = numeric_id(update.channel_ref, "Shopify fulfillment id")
                current = api.fulfillment(fulfillment_id)
                if _tracking_differs(current, update):
                    api.update_tracking(fulfillment_id, update, channel.notify_customer)
                    result["tracking_updated"] = True
                result["outcome"] = "updated"
            else:
                found = api.fulfillment_with(update.tracking_number)
                if found is not None:
                    fulfillment_id, result["outcome"] = found, "adopted"
                else:
                    fulfillment_id = api.create(update, channel.notify_customer)
                    result["outcome"] = "created"
            status = EVENT_STATUSES.get(update.status)
            if status is not None:
                event_id, created = api.event(fulfillment_id, status, update)
                result.update(event_status=status, event_id=event_id, event_created=created)
        return {"channel_ref": str(fulfillment_id), "fulfillment_id": fulfillment_id, **result}


def _tracking_info(update: ShipmentUpdate) -> dict[str, str]:
    info = {"number": update.tracking_number, "url": update.tracking_url,
            "company": update.carrier_name}  # fmt: skip
    return {key: value for key, value in info.items() if value}


def _tracking_differs(fulfillment: Mapping[str, Any], update: ShipmentUpdate) -> bool:
    """Whether Shopify's tracking is not ours. Only what we have is compared (Shopify fills a
    URL of its own for known carriers when we sent none)."""
    numbers = [str(n) for n in fulfillment.get("tracking_numbers") or []] or (
        [str(fulfillment["tracking_number"])] if fulfillment.get("tracking_number") else []
    )
    urls = [str(u) for u in fulfillment.get("tracking_urls") or []] or (
        [str(fulfillment["tracking_url"])] if fulfillment.get("tracking_url") else []
    )
    if update.tracking_number and update.tracking_number not in numbers:
        return True
    return bool(update.tracking_url) and update.tracking_url not in urls


def fulfillment_order_lines(
    order_id: int, lines: Iterable[ShipmentUpdateLine], fulfillment_orders: Iterable[Any]
) -> list[dict[str, Any]]:
    """``line_items_by_fulfillment_order`` for a parcel: every line's quantity taken from the
    open fulfillment orders' line items of one location (the first location that holds the
    whole parcel). ``WritebackError`` (not retryable) when no location does, saying why."""
    wanted: dict[str, int] = {}
    for line in lines:
        if not line.external_line_id:
            raise WritebackError(
                f"Shopify order {order_id}: a parcel line (line {line.line_no}) has no Shopify "
                "line item id",
                retryable=False,
            )
        wanted[line.external_line_id] = wanted.get(line.external_line_id, 0) + line.quantity
    if not wanted:
        raise WritebackError(f"Shopify order {order_id}: the parcel has no lines", retryable=False)
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for fo in fulfillment_orders:
        if not isinstance(fo, Mapping) or fo.get("status") not in FULFILLABLE:
            continue
        method = fo.get("delivery_method")
        method_type = method.get("method_type") if isinstance(method, Mapping) else None
        key = (str(fo.get("assigned_location_id") or ""), str(method_type or ""))
        groups.setdefault(key, []).append(fo)
    for fos in groups.values():
        taken = _take(wanted, fos)
        if taken is not None:
            return taken
    everywhere = [fo for fos in groups.values() for fo in fos]
    if len(groups) > 1 and _take(wanted, everywhere) is not None:
        locations = ", ".join(sorted({key[0] or "?" for key in groups}))
        raise WritebackError(
            f"Shopify order {order_id}: the parcel's lines are assigned to different locations "
            f"or delivery methods in Shopify (locations {locations}); one fulfillment cannot "
            "mix them: move the fulfillment orders to one location in Shopify, then retry",
            retryable=False,
        )
    short = []
    for line_id, quantity in wanted.items():
        have = sum(_fulfillable(fo, line_id) for fo in everywhere)
        if have < quantity:
            short.append(f"line item {line_id}: {quantity} shipped, {have} left to fulfil")
    raise WritebackError(
        f"Shopify order {order_id}: the open fulfillment orders do not hold the parcel ("
        + "; ".join(short or ["not in one location"])
        + "); was it fulfilled or cancelled in Shopify?",
        retryable=False,
    )


def _fulfillable(fo: Mapping[str, Any], line_id: str) -> int:
    return sum(
        int(item.get("fulfillable_quantity") or 0)
        for item in fo.get("line_items") or []
        if str(item.get("line_item_id")) == line_id
    )


def _take(wanted: Mapping[str, int], fos: list[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """The FO line items and quantities for ``wanted`` from ``fos``, or None if short."""
    chosen: dict[Any, list[dict[str, Any]]] = {}
    for line_id, quantity in wanted.items():
        left = quantity
        for fo in fos:
            for item in fo.get("line_items") or []:
                if left == 0 or str(item.get("line_item_id")) != line_id:
                    continue
                take = min(left, int(item.get("fulfillable_quantity") or 0))
                if take > 0:
                    chosen.setdefault(fo["id"], []).append({"id": item["id"], "quantity": take})
                    left -= take
        if left:
            return None
    return [
        {"fulfillment_order_id": fo_id, "fulfillment_order_line_items": items}
        for fo_id, items in chosen.items()
    ]


class _Api:
    """The calls of one push, on one session."""

    def __init__(self, http: IntegrationSession, config: ChannelConfig, order_id: int) -> None:
        self.http = http
        self.config = config
        self.order_id = order_id
        self.headers = admin_headers(config)

    def _json(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        answer = call_json(
            self.http, method, admin_url(self.config, path), what=f"Shopify {what}",
            headers=self.headers, **kwargs,
        )  # fmt: skip
        if not isinstance(answer, dict):
            raise WritebackError(f"Shopify {what}: the answer is not an object", retryable=True)
        return answer

    def fulfillment_with(self, tracking_number: str) -> int | None:
        """The id of the order's live fulfillment that carries ``tracking_number``, if any."""
        if not tracking_number:
            return None
        answer = self._json(
            "GET", f"orders/{self.order_id}/fulfillments.json", "list fulfillments",
            params={"limit": PAGE_LIMIT},
        )  # fmt: skip
        for fulfillment in answer.get("fulfillments") or []:
            if fulfillment.get("status") in GONE:
                continue
            numbers = {str(n) for n in fulfillment.get("tracking_numbers") or []}
            if fulfillment.get("tracking_number"):
                numbers.add(str(fulfillment["tracking_number"]))
            if tracking_number in numbers:
                return int(fulfillment["id"])
        return None

    def fulfillment(self, fulfillment_id: int) -> Mapping[str, Any]:
        answer = self._json(
            "GET", f"orders/{self.order_id}/fulfillments/{fulfillment_id}.json",
            "get fulfillment",
        )  # fmt: skip
        fulfillment = answer.get("fulfillment")
        if not isinstance(fulfillment, dict):
            raise WritebackError(
                f"Shopify get fulfillment {fulfillment_id}: the answer has no fulfillment",
                retryable=True,
            )
        return fulfillment

    def create(self, update: ShipmentUpdate, notify: bool) -> int:
        if not update.tracking_number:
            raise WritebackError(
                f"{update.reference} has no tracking number: Shopify is told of tracked "
                "parcels only",
                retryable=False,
            )
        answer = self._json(
            "GET", f"orders/{self.order_id}/fulfillment_orders.json", "list fulfillment orders"
        )
        by_fo = fulfillment_order_lines(
            self.order_id, update.lines, answer.get("fulfillment_orders") or []
        )
        body = {"fulfillment": {
            "line_items_by_fulfillment_order": by_fo, "tracking_info": _tracking_info(update),
            "notify_customer": notify,
        }}  # fmt: skip
        created = self._json("POST", "fulfillments.json", "create fulfillment", json=body)
        fulfillment = created.get("fulfillment") or {}
        if not fulfillment.get("id"):
            raise WritebackError(
                "Shopify create fulfillment: the answer has no fulfillment id", retryable=True
            )
        return int(fulfillment["id"])

    def update_tracking(self, fulfillment_id: int, update: ShipmentUpdate, notify: bool) -> None:
        body = {"fulfillment": {"tracking_info": _tracking_info(update),
                                "notify_customer": notify}}  # fmt: skip
        self._json(
            "POST", f"fulfillments/{fulfillment_id}/update_tracking.json", "update tracking",
            json=body,
        )  # fmt: skip

    def event(self, fulfillment_id: int, status: str, update: ShipmentUpdate) -> tuple[int, bool]:
        """(event id, created) for this status at this time: the one already there, or new."""
        path = f"orders/{self.order_id}/fulfillments/{fulfillment_id}/events.json"
        answer = self._json("GET", path, "list fulfillment events")
        for event in answer.get("fulfillment_events") or []:
            if event.get("status") != status:
                continue
            happened = parse_time(event.get("happened_at"))
            if update.occurred_at is None or (
                happened is not None
                and whole_seconds(happened) == whole_seconds(update.occurred_at)
            ):
                return int(event["id"]), False
        event_body: dict[str, Any] = {"status": status}
        if update.occurred_at is not None:
            event_body["happened_at"] = timestamp(update.occurred_at)
        if update.message:
            event_body["message"] = update.message[:255]
        if update.estimated_delivery_until or update.estimated_delivery_from:
            event_body["estimated_delivery_at"] = timestamp(
                update.estimated_delivery_until or update.estimated_delivery_from
            )
        created = self._json("POST", path, "create fulfillment event", json={"event": event_body})
        event = created.get("fulfillment_event") or {}
        return int(event.get("id") or 0), True
