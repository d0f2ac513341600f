"""Amazon SP-API tracking write-back: confirm each parcel as a package of the order, then read
the order back to check that Amazon recorded it.

``POST /orders/v0/orders/{orderId}/shipmentConfirmation`` with the order's ``marketplaceId``
and one ``packageDetail``: ``packageReferenceId`` is our shipment's number (Amazon takes only
positive numbers there; a retry re-sends the same one, which Amazon treats as an edit of that
package, never a second package), ``carrierCode`` (``CARRIER_CODES``; ``Other`` with the
carrier's name in ``carrierName`` otherwise), ``shippingMethod``, ``trackingNumber``,
``shipDate`` (UTC) and ``orderItems`` (the channel's order item ids and the parcel's units).

Amazon answers 204 and is known to drop a confirmation now and then, so the order is read back
(Orders API 2026-01-01 ``getOrder`` with ``includedData=PACKAGES``) and our package looked
for, by its reference or its tracking number: a missing one is a retryable error ("Amazon
acknowledged but did not record the package") and the outbox confirms it again later.

Calls go through ``channels.adapters.amazon.SpApiClient`` (LWA token, regional base URL,
pacing per operation by ``x-amzn-RateLimit-Limit``) on the write-back session
(``channels.writeback.session``) like every other kind: GETs are retried inside it, a POST
never; a confirmation that failed or timed out is re-sent by the outbox's next attempt (with the
same ``packageReferenceId``: an edit). The pacing state is shared by every push of a channel in this
process and starts at Amazon's documented default for confirmShipment (2 requests per second)
until an answer states the channel's own limit.

Amazon hears the shipment confirmation only (``tells`` is False): it keeps no delivery events
from sellers; it follows the carrier itself.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import structlog

from channels.adapters.amazon import SpApiClient
from channels.writeback import (
    Writeback,
    WritebackChannel,
    WritebackError,
    carrier_key,
    session,
    timestamp,
)
from orders.feedback import ShipmentUpdate

log = structlog.get_logger(__name__)

KIND = "amazon"
CONFIRM_OPERATION = "confirmShipment"
GET_ORDER_OPERATION = "getOrder"
GET_ORDER_PATH = "/orders/2026-01-01/orders/{order_id}"
DEFAULT_LIMITS = {CONFIRM_OPERATION: 2.0}  # requests per second (SP-API's default usage plan)
REQUIRED_CREDENTIALS = ("client_id", "client_secret", "refresh_token", "marketplace_ids")
NEEDS = (
    "an api_base_url and client_id, client_secret, refresh_token and marketplace_ids in its "
    "credentials"
)
NOT_RECORDED = "Amazon acknowledged but did not record the package"

# Our and EasyPost's carrier names (folded by ``carrier_key``) -> Amazon's CarrierCode values.
CARRIER_CODES = {
    "usps": "USPS",
    "ups": "UPS",
    "upsmailinnovations": "UPS Mail Innovations",
    "fedex": "FedEx",
    "fedexsmartpost": "FedEx SmartPost",
    "dhl": "DHL",
    "dhlexpress": "DHL",
    "dhlecommerce": "DHL eCommerce",
    "dhlglobalmail": "DHL Global Mail",
    "ontrac": "OnTrac",
    "lasership": "Lasership",
    "canadapost": "Canada Post",
    "royalmail": "Royal Mail",
    "parcelforce": "Parcelforce",
    "dpd": "DPD",
    "dpduk": "DPD",
    "gls": "GLS",
    "tnt": "TNT",
    "yodel": "Yodel",
    "hermes": "Hermes Logistik Gruppe",
    "deutschepost": "Deutsche Post",
    "laposte": "La Poste",
    "colissimo": "La Poste",
    "chronopost": "Chronopost",
    "posteitaliane": "Poste Italiane",
    "australiapost": "Australia Post",
    "yamato": "Yamato Transport",
    "sagawa": "Sagawa Express",
}
OTHER = "Other"

# Pacing per channel, shared by this process's pushes (one SpApiClient per push).
_pacing: OrderedDict[int, tuple[dict[str, float], dict[str, float]]] = OrderedDict()
_pacing_lock = threading.Lock()
MAX_PACED_CHANNELS = 256


def _pacing_of(channel_id: int) -> tuple[dict[str, float], dict[str, float]]:
    with _pacing_lock:
        state = _pacing.get(channel_id)
        if state is None:
            state = (dict(DEFAULT_LIMITS), {})
            _pacing[channel_id] = state
            while len(_pacing) > MAX_PACED_CHANNELS:
                _pacing.popitem(last=False)
        return state


def sp_api_ready(channel: WritebackChannel) -> bool:
    """Whether the channel has what the SP-API calls need (the same as polling)."""
    creds = channel.config.credentials or {}
    return bool(channel.config.api_base_url) and all(creds.get(k) for k in REQUIRED_CREDENTIALS)


def carrier_code(carrier_name: str) -> tuple[str, str]:
    """(Amazon ``carrierCode``, ``carrierName`` for ``Other`` or "")."""
    code = CARRIER_CODES.get(carrier_key(carrier_name))
    if code:
        return code, ""
    return OTHER, carrier_name or "Other carrier"


def package_reference(update: ShipmentUpdate) -> str:
    """Our shipment's number, the package's reference at Amazon (a positive number)."""
    number = update.reference.removeprefix("shipment-")
    if not number.isdigit() or int(number) <= 0:
        raise WritebackError(
            f"shipment reference {update.reference!r} is not a positive number, which Amazon "
            "requires as packageReferenceId",
            retryable=False,
        )
    return str(int(number))


def confirmation_body(update: ShipmentUpdate, marketplace_id: str) -> dict[str, Any]:
    """The shipmentConfirmation request for this parcel (no personal data: ids, carrier,
    tracking number, units)."""
    quantities: dict[str, int] = {}
    for line in update.lines:
        if not line.external_line_id:
            raise WritebackError(
                f"order line {line.line_no} ({line.sku}) has no Amazon order item id: the "
                "package cannot name it",
                retryable=False,
            )
        quantities[line.external_line_id] = quantities.get(line.external_line_id, 0) + int(
            line.quantity
        )
    if not quantities:
        raise WritebackError("the parcel has no lines to confirm", retryable=False)
    if not update.tracking_number:
        raise WritebackError("the parcel has no tracking number to confirm", retryable=False)
    code, name = carrier_code(update.carrier_name)
    shipped = timestamp(update.shipped_at or update.occurred_at)
    if shipped is None:
        raise WritebackError("the parcel has no ship date to confirm", retryable=False)
    detail: dict[str, Any] = {
        "packageReferenceId": package_reference(update),
        "carrierCode": code,
        "shippingMethod": update.service or "Standard",
        "trackingNumber": update.tracking_number,
        "shipDate": shipped,
        "orderItems": [{"orderItemId": item, "quantity": qty} for item, qty in quantities.items()],
    }
    if name:
        detail["carrierName"] = name
    return {"marketplaceId": marketplace_id, "packageDetail": detail}


def recorded_package(order: dict[str, Any], reference: str, tracking: str) -> dict[str, Any] | None:
    """Our package in a 2026-01-01 order's ``packages``: the one with our reference, or with
    our tracking number."""
    packages = order.get("packages") or []
    for package in packages if isinstance(packages, list) else []:
        if not isinstance(package, dict):
            continue
        if str(package.get("packageReferenceId") or "") == reference:
            return package
    for package in packages if isinstance(packages, list) else []:
        if isinstance(package, dict) and tracking and package.get("trackingNumber") == tracking:
            return package
    return None


def _package_status(package: dict[str, Any]) -> str:
    status = package.get("packageStatus")
    return str(status.get("status") or "") if isinstance(status, dict) else ""


class AmazonWriteback(Writeback):
    kind = KIND
    needs = NEEDS

    def ready(self, channel: WritebackChannel) -> bool:
        return sp_api_ready(channel)

    def __init__(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sleep, self.clock = sleep, clock  # injectable: pacing tests do not wait

    def tells(self, status: str) -> bool:
        return False  # the shipment confirmation only: Amazon keeps no seller delivery events

    def send(self, channel: WritebackChannel, update: ShipmentUpdate) -> dict[str, Any]:
        config = channel.config
        reference = package_reference(update)
        limits, last_calls = _pacing_of(config.id)
        client = SpApiClient(
            config, session=session(config), sleep=self.sleep,
            clock=self.clock, limits=limits, last_calls=last_calls,
        )  # fmt: skip
        order_id = update.order_external_id
        try:
            marketplace = str(update.order_source.get("marketplace_id") or "")
            marketplace = marketplace or client.marketplace_ids().split(",")[0]
            body = confirmation_body(update, marketplace)
            path = f"/orders/v0/orders/{quote(order_id, safe='')}/shipmentConfirmation"
            client.post(path, operation=CONFIRM_OPERATION, body=body)
            answer = client.get_json(
                GET_ORDER_PATH.format(order_id=quote(order_id, safe="")),
                operation=GET_ORDER_OPERATION, params={"includedData": "PACKAGES"},
            )  # fmt: skip
        finally:
            client.close()
        order = answer.get("order")
        package = recorded_package(order if isinstance(order, dict) else {}, reference,
                                   update.tracking_number)  # fmt: skip
        if package is None:
            log.warning(
                "amazon_writeback.not_recorded", channel_id=config.id, shipment_ref=reference,
            )  # fmt: skip
            raise WritebackError(NOT_RECORDED, retryable=True)
        log.info("amazon_writeback.confirmed", channel_id=config.id, shipment_ref=reference)
        return {
            "channel_ref": f"package:{reference}",
            "package_reference_id": reference,
            "carrier_code": body["packageDetail"]["carrierCode"],
            "verified": True,
            "package_status": _package_status(package),
        }
