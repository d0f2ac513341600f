"""BigCommerce tracking write-back (V2 API, ``{api_base_url}/v2/orders/{order_id}/shipments``).

A parcel's first write-back creates one shipment: ``GET .../shipments`` first (page by page; a
shipment of the order that already carries our tracking number is adopted, so a retry after a
timeout whose create went through makes no second), then ``POST .../shipments`` with
``order_address_id``, ``items`` (``order_product_id`` = our ``external_line_id``, with the
parcel's quantities), ``tracking_number``, ``tracking_link``, ``shipping_provider`` and
``tracking_carrier`` (``CARRIERS``; a carrier BigCommerce has no value for is sent as ``""``
with the carrier's name as ``shipping_method``). Never repeated inside the session.

``order_address_id``: each product line's own address (``order.source["line_address_ids"]``,
kept by the normalizer from the order's products), else the order's single shipping address
(``source["shipping_address_id"]``); an order ingested before those were kept has its products
read from the API. One shipment goes to one address: a parcel whose lines ship to two is refused.

A later change (the shipment's id is our ``channel_ref``): ``GET`` it, and ``PUT`` the tracking
when ours differs. BigCommerce keeps no delivery events: ``tells()`` is False for every carrier
status, so only a parcel's first write-back (and tracking changes) reach it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.adapters.base import ChannelConfig
from channels.adapters.bigcommerce import all_pages, api_headers, api_ready, order_url
from channels.writeback import (
    Writeback,
    WritebackChannel,
    WritebackError,
    call_json,
    carrier_key,
    numeric_id,
    session,
)
from config.integrations import IntegrationSession
from orders.feedback import ShipmentUpdate

KIND = "bigcommerce"
NEEDS = "an api_base_url and an access_token in its credentials"
# A carrier's name, folded (``carrier_key``) -> (shipping_provider,
# tracking_carrier) as the V2 shipments resource spells them. Anything else: ("", "").
CARRIERS: dict[str, tuple[str, str]] = {
    "usps": ("usps", "usps"),
    "ups": ("ups", "ups"),
    "fedex": ("fedex", "fedex"),
    "canadapost": ("canadapost", "canada-post"),
    "royalmail": ("royalmail", "royal-mail"),
    "auspost": ("auspost", "australia-post"),
    "australiapost": ("auspost", "australia-post"),
    "dhl": ("", "dhl"),
    "dhlexpress": ("", "dhl"),
}


def carrier_fields(carrier_name: str, carrier: str = "") -> dict[str, str]:
    """``shipping_provider``, ``tracking_carrier`` and, for a carrier BigCommerce has no
    value for, ``shipping_method`` (its name, shown to the customer)."""
    for name in (carrier_name, carrier):
        squeezed = carrier_key(name)
        if squeezed in CARRIERS:
            provider, tracking = CARRIERS[squeezed]
            return {"shipping_provider": provider, "tracking_carrier": tracking}
    fields = {"shipping_provider": "", "tracking_carrier": ""}
    if carrier_name or carrier:
        fields["shipping_method"] = (carrier_name or carrier)[:100]
    return fields


class BigCommerceWriteback(Writeback):
    kind = KIND
    needs = NEEDS

    def ready(self, channel: WritebackChannel) -> bool:
        return api_ready(channel.config)

    def tells(self, status: str) -> bool:
        return False  # BigCommerce keeps no delivery events: tracking changes only

    def send(self, channel: WritebackChannel, update: ShipmentUpdate) -> dict[str, Any]:
        order_id = numeric_id(update.order_external_id, "BigCommerce order id")
        with session(channel.config) as http:
            api = _Api(http, channel.config, order_id)
            if update.channel_ref:
                shipment_id = numeric_id(update.channel_ref, "BigCommerce shipment id")
                current = api.shipment(shipment_id)
                changed = _differs(current, update)
                if changed:
                    api.update(shipment_id, update)
                outcome = "updated" if changed else "unchanged"
            else:
                found = api.shipment_with(update.tracking_number)
                if found is not None:
                    shipment_id, outcome = found, "adopted"
                else:
                    shipment_id, outcome = api.create(update), "created"
        return {"channel_ref": str(shipment_id), "shipment_id": shipment_id, "outcome": outcome}


def _differs(shipment: Mapping[str, Any], update: ShipmentUpdate) -> bool:
    if update.tracking_number and str(shipment.get("tracking_number") or "") != (
        update.tracking_number
    ):
        return True
    return bool(update.tracking_url) and str(shipment.get("tracking_link") or "") != (
        update.tracking_url
    )


def _tracking(update: ShipmentUpdate) -> dict[str, Any]:
    body: dict[str, Any] = {"tracking_number": update.tracking_number}
    if update.tracking_url:
        body["tracking_link"] = update.tracking_url
    body.update(carrier_fields(update.carrier_name, update.carrier))
    return body


class _Api:
    def __init__(self, http: IntegrationSession, config: ChannelConfig, order_id: int) -> None:
        self.http = http
        self.config = config
        self.order_id = order_id
        self.base = order_url(config, order_id)
        self.headers = api_headers(config)

    def shipment_with(self, tracking_number: str) -> int | None:
        if not tracking_number:
            return None
        for shipment in all_pages(self.http, f"{self.base}/shipments", "shipments", self.headers):
            if isinstance(shipment, Mapping) and str(shipment.get("tracking_number") or "") == (
                tracking_number
            ):
                return int(shipment["id"])
        return None

    def shipment(self, shipment_id: int) -> Mapping[str, Any]:
        answer = call_json(
            self.http, "GET", f"{self.base}/shipments/{shipment_id}",
            what="BigCommerce get shipment", headers=self.headers,
        )  # fmt: skip
        if not isinstance(answer, dict):
            raise WritebackError(
                f"BigCommerce get shipment {shipment_id}: the answer is not a shipment",
                retryable=True,
            )
        return answer

    def address_id(self, update: ShipmentUpdate) -> int:
        """The ``order_address_id`` the parcel's lines ship to (see the module doc)."""
        source = update.order_source or {}
        by_line = {str(k): v for k, v in (source.get("line_address_ids") or {}).items()}
        if not by_line and not source.get("shipping_address_id"):
            products = all_pages(self.http, f"{self.base}/products", "products", self.headers)
            by_line = {
                str(p["id"]): p["order_address_id"]
                for p in products
                if isinstance(p, Mapping) and p.get("id") is not None and p.get("order_address_id")
            }
        found = {by_line[line.external_line_id] for line in update.lines
                 if line.external_line_id in by_line}  # fmt: skip
        if len(found) > 1:
            raise WritebackError(
                f"BigCommerce order {self.order_id}: the parcel's lines ship to "
                f"{len(found)} different order addresses; one shipment goes to one address",
                retryable=False,
            )
        if found:
            return numeric_id(found.pop(), "BigCommerce order address id")
        if source.get("shipping_address_id"):
            return numeric_id(source["shipping_address_id"], "BigCommerce order address id")
        raise WritebackError(
            f"BigCommerce order {self.order_id}: no shipping address id for the parcel's lines",
            retryable=False,
        )

    def create(self, update: ShipmentUpdate) -> int:
        if not update.lines:
            raise WritebackError(
                f"BigCommerce order {self.order_id}: the parcel has no lines", retryable=False
            )
        body = {
            "order_address_id": self.address_id(update),
            "items": [
                {"order_product_id": numeric_id(line.external_line_id, "BigCommerce product id"),
                 "quantity": line.quantity}
                for line in update.lines
            ],
            **_tracking(update),
        }  # fmt: skip
        answer = call_json(
            self.http, "POST", f"{self.base}/shipments", what="BigCommerce create shipment",
            headers=self.headers, json=body,
        )  # fmt: skip
        if not isinstance(answer, dict) or not answer.get("id"):
            raise WritebackError(
                "BigCommerce create shipment: the answer has no shipment id", retryable=True
            )
        return int(answer["id"])

    def update(self, shipment_id: int, update: ShipmentUpdate) -> None:
        call_json(
            self.http, "PUT", f"{self.base}/shipments/{shipment_id}",
            what="BigCommerce update shipment", headers=self.headers, json=_tracking(update),
        )  # fmt: skip
