"""WooCommerce tracking write-back: the Shipment Tracking extension when the store has it, else
an order note; the order ``completed`` once every unit has shipped.

Auth and base URL as everywhere for WooCommerce (``api_base_url``, REST API key
``consumer_key`` / ``consumer_secret`` as basic auth, see ``channels.adapters.woocommerce``).

A parcel's first write-back:

1. ``GET /wp-json/wc-shipment-tracking/v3/orders/{id}/shipment-trackings``: 200 means the
   store has the Shipment Tracking extension (a 404 that it has not; asked on every push, so
   installing it later takes effect). A tracking with our tracking number is adopted (a retry
   after an answer that never came); else ``POST`` one: ``tracking_provider`` when the
   extension knows the carrier (``PROVIDERS``), else ``custom_tracking_provider`` and
   ``custom_tracking_link``, with ``tracking_number`` and ``date_shipped``.
2. Without the extension: ``GET /wp-json/wc/v3/orders/{id}/notes`` and a note carrying our
   shipment reference (``[orderdesk shipment-12]``) is adopted; else ``POST`` one. Whether it
   is a customer note (WooCommerce emails it and shows it in the customer's account) is the
   channel's ``writeback_notify_customer``: off by default, because our own shipping email
   already tells the customer and a customer note would tell them twice; the note is then
   private, for the shop's staff, who see the tracking on the order.
3. When every unit of the order has shipped and the channel's ``writeback_complete_order`` is
   on: ``GET`` the order and, unless it already is, ``PUT {"status": "completed"}`` (once: a
   completed order is never put again).

Later changes: WooCommerce hears delivery and delivery problems (``TOLD``) as a private order
note naming the event (the customer hears from us, the staff see it on the order), adopted on a
retry like the first. In-transit scans are not told (noise on the order).

A POST is never repeated inside the session (``channels.writeback.session``): the next attempt
looks for what the first one made.
"""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any

import structlog

from channels.adapters.base import ChannelConfig
from channels.writeback import (
    Writeback,
    WritebackChannel,
    WritebackError,
    call,
    carrier_key,
    session,
)
from config import integrations
from orders.feedback import ShipmentUpdate

if TYPE_CHECKING:
    import requests

log = structlog.get_logger(__name__)

KIND = "woocommerce"
NEEDS = "an api_base_url and consumer_key and consumer_secret in its credentials"
TOLD = frozenset({"delivered", "available_for_pickup", "failed_attempt", "exception",
                  "return_to_sender"})  # fmt: skip
COMPLETED = "completed"
# Carrier names (folded) -> the Shipment Tracking extension's own provider names.
PROVIDERS = {
    "usps": "USPS",
    "ups": "UPS",
    "fedex": "Fedex",
    "dhl": "DHL US",
    "dhlexpress": "DHL US",
    "ontrac": "OnTrac",
    "canadapost": "Canada Post",
    "royalmail": "Royal Mail",
    "parcelforce": "Parcel Force",
    "dpd": "DPD",
    "australiapost": "Australia Post",
}
STATUS_WORDS = {
    "delivered": "Delivered",
    "available_for_pickup": "Ready for pickup",
    "failed_attempt": "Delivery attempted, not delivered",
    "exception": "Delivery problem",
    "return_to_sender": "Returning to sender",
}


def rest_api_ready(channel: WritebackChannel) -> bool:
    """Whether the channel has a base URL and a REST API key."""
    creds = channel.config.credentials or {}
    return bool(channel.config.api_base_url and creds.get("consumer_key")
                and creds.get("consumer_secret"))  # fmt: skip


def marker(update: ShipmentUpdate, *, event: bool = False) -> str:
    """What a note of ours carries so that a retry finds it."""
    if event:
        return f"[orderdesk {update.reference} {update.status} {update.event_id or ''}]".replace(
            " ]", "]"
        )
    return f"[orderdesk {update.reference}]"


class _Store:
    """One push's calls to one store."""

    def __init__(self, config: ChannelConfig, session: integrations.IntegrationSession) -> None:
        self.config, self.session = config, session
        creds = config.credentials
        self.auth = (str(creds.get("consumer_key") or ""), str(creds.get("consumer_secret") or ""))

    def url(self, path: str) -> str:
        return f"{self.config.api_base_url.rstrip('/')}/wp-json{path}"

    def request(
        self, method: str, path: str, *, what: str, accept: tuple[int, ...] = (), **kwargs: Any
    ) -> requests.Response:
        return call(
            self.session, method, self.url(path), what=f"WooCommerce {what}", accept=accept,
            auth=self.auth, headers={"Accept": "application/json"}, **kwargs,
        )  # fmt: skip

    def json(self, response: requests.Response, what: str) -> Any:
        return self.session.json_of(response, what=f"WooCommerce {what}")


def _order_id(update: ShipmentUpdate) -> int:
    try:
        return int(update.order_external_id)
    except ValueError:
        raise WritebackError(
            f"order {update.order_external_id!r} is not a WooCommerce order id", retryable=False
        ) from None


def _shipment_note(update: ShipmentUpdate) -> str:
    carrier = update.carrier_name or update.carrier
    words = f"Shipped with {carrier}, tracking number {update.tracking_number}"
    if update.tracking_url:
        words += f": {update.tracking_url}"
    return f"{words} {marker(update)}"


def _event_note(update: ShipmentUpdate) -> str:
    words = STATUS_WORDS.get(update.status, update.status.replace("_", " ").capitalize())
    return f"Parcel {update.tracking_number}: {words}. {marker(update, event=True)}"


class WooCommerceWriteback(Writeback):
    kind = KIND
    needs = NEEDS

    def ready(self, channel: WritebackChannel) -> bool:
        return rest_api_ready(channel)

    def tells(self, status: str) -> bool:
        return status in TOLD

    def send(self, channel: WritebackChannel, update: ShipmentUpdate) -> dict[str, Any]:
        config = channel.config
        order_id = _order_id(update)
        result: dict[str, Any] = {}
        with session(config) as http:
            store = _Store(config, http)
            if not update.channel_ref:
                notify = channel.notify_customer
                result.update(self._record(store, order_id, update, notify))
                if update.order_complete and channel.complete_order:
                    result["order_completed"] = self._complete(store, order_id)
            else:
                result["channel_ref"] = update.channel_ref
            if update.status in TOLD:
                result["event_note_id"] = self._note(
                    store, order_id, marker(update, event=True), _event_note(update),
                    customer_note=False,
                )  # fmt: skip
        log.info("woocommerce_writeback.pushed", channel_id=config.id, order_id=order_id,
                 via=result.get("via", "event"))  # fmt: skip
        return result

    # --- the parcel's record ------------------------------------------------------------
    def _record(
        self, store: _Store, order_id: int, update: ShipmentUpdate, notify: bool
    ) -> dict[str, Any]:
        path = f"/wc-shipment-tracking/v3/orders/{order_id}/shipment-trackings"
        response = store.request("GET", path, what="list shipment trackings", accept=(404,))
        if response.status_code == 404:
            response.close()  # no Shipment Tracking extension on this store
            note_id = self._note(store, order_id, marker(update), _shipment_note(update),
                                 customer_note=notify)  # fmt: skip
            return {"channel_ref": f"note:{note_id}", "via": "order_note", "note_id": note_id}
        trackings = store.json(response, "list shipment trackings") or []
        for tracking in trackings if isinstance(trackings, list) else []:
            if isinstance(tracking, dict) and tracking.get("tracking_number") == (
                update.tracking_number
            ):
                return {"channel_ref": f"tracking:{tracking.get('tracking_id')}",
                        "via": "shipment_tracking", "adopted": True}  # fmt: skip
        shipped = update.shipped_at or update.occurred_at
        body: dict[str, Any] = {
            "tracking_number": update.tracking_number,
            "date_shipped": shipped.astimezone(UTC).date().isoformat() if shipped else None,
        }
        provider = PROVIDERS.get(carrier_key(update.carrier_name))
        if provider:
            body["tracking_provider"] = provider
        else:
            body["custom_tracking_provider"] = update.carrier_name or update.carrier
            body["custom_tracking_link"] = update.tracking_url
        body = {k: v for k, v in body.items() if v is not None}
        created = store.json(
            store.request("POST", path, what="create shipment tracking", json=body),
            "create shipment tracking",
        )
        tracking_id = created.get("tracking_id") if isinstance(created, dict) else None
        if not tracking_id:
            raise WritebackError(
                f"WooCommerce create shipment tracking for order {order_id}: no tracking_id "
                "in the answer",
                retryable=True,
            )
        return {"channel_ref": f"tracking:{tracking_id}", "via": "shipment_tracking",
                "adopted": False}  # fmt: skip

    def _note(
        self, store: _Store, order_id: int, mark: str, text: str, *, customer_note: bool
    ) -> int:
        path = f"/wc/v3/orders/{order_id}/notes"
        notes = store.json(store.request("GET", path, what="list order notes"), "list order notes")
        for note in notes if isinstance(notes, list) else []:
            if isinstance(note, dict) and mark in str(note.get("note") or ""):
                return int(note["id"])
        created = store.json(
            store.request("POST", path, what="create order note",
                          json={"note": text, "customer_note": customer_note}),
            "create order note",
        )  # fmt: skip
        if not isinstance(created, dict) or not created.get("id"):
            raise WritebackError(
                f"WooCommerce create order note for order {order_id}: no id in the answer",
                retryable=True,
            )
        return int(created["id"])

    def _complete(self, store: _Store, order_id: int) -> bool:
        """Set the order ``completed`` unless it already is; whether this call did."""
        path = f"/wc/v3/orders/{order_id}"
        order = store.json(store.request("GET", path, what="get order"), "get order")
        if isinstance(order, dict) and order.get("status") == COMPLETED:
            return False
        store.request("PUT", path, what="complete order", json={"status": COMPLETED}).close()
        return True
