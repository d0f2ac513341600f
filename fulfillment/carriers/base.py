"""The carrier interface: rates, buy a label, void it, track it.

Carriers are small adapters behind this one interface (``local``: built in, renders its own
labels; ``easypost``: EasyPost's REST API). Amounts are ``Decimal`` quantized to the currency;
weights are grams; addresses are the canonical order's address dicts (``line1``, ``line2``,
``city``, ``region_code``, ``postal_code``, ``country_code``, ``name``, ``company``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlsplit

from config.integrations import IntegrationError

# Service levels a routing rule asks for, slowest to fastest; a rate "meets" a level when its
# own level is the same or faster.
SERVICE_LEVELS = ("economy", "ground", "express", "premium")


class CarrierError(IntegrationError):
    """The carrier refused or failed. ``retryable``: the same call may succeed later."""


@dataclass(frozen=True)
class CustomsLine:
    sku: str
    description: str
    quantity: int
    value: Decimal  # declared value of the whole line, in ``currency``
    currency: str
    hs_code: str = ""
    origin_country: str = ""
    weight_grams: int = 0


@dataclass(frozen=True)
class ShipmentRequest:
    reference: str  # our idempotency key for this shipment: the same key never buys twice
    ship_from: dict[str, Any]
    ship_to: dict[str, Any]
    weight_grams: int
    service_level: str = "ground"
    signature_required: bool = False
    customs: list[CustomsLine] = field(default_factory=list)
    correlation_id: str = ""
    # A return parcel: ``ship_from`` is the customer's address, ``ship_to`` the warehouse's,
    # and ``reference`` the RMA number.
    is_return: bool = False


@dataclass(frozen=True)
class Rate:
    carrier: str
    service: str  # the carrier's own service name
    service_level: str  # one of SERVICE_LEVELS
    amount: Decimal
    currency: str
    delivery_days: int | None = None
    rate_id: str = ""  # the carrier's id of this quote, when it has one
    carrier_shipment_id: str = ""  # the carrier's shipment the quote belongs to, if any


@dataclass(frozen=True)
class Label:
    carrier: str
    service: str
    tracking_number: str
    carrier_shipment_id: str
    rate: Rate
    label_pdf: bytes | None = None  # a 4x6 inch PDF when the carrier gives (or we render) one
    label_zpl: str = ""
    label_url: str = ""
    tracking_url: str = ""


# Our one tracking vocabulary: every carrier's statuses map to these (each carrier module keeps
# its own table; the raw status and sub-status are kept next to ours on every event).
# (status, words a customer reads)
TRACKING_STATUSES: tuple[tuple[str, str], ...] = (
    ("unknown", "Status not known yet"),
    ("pre_transit", "Label created, waiting for the carrier"),
    ("in_transit", "On its way"),
    ("out_for_delivery", "Out for delivery"),
    ("available_for_pickup", "Ready for pickup"),
    ("delivered", "Delivered"),
    ("failed_attempt", "Delivery attempted, not delivered"),
    ("exception", "Delivery problem"),
    ("return_to_sender", "Returning to sender"),
    ("cancelled", "Tracking cancelled by the carrier"),
)
TRACKING_STATUS_CODES = frozenset(code for code, _words in TRACKING_STATUSES)


@dataclass(frozen=True)
class TrackingEvent:
    """One carrier scan or status change. ``status`` is ours (``TRACKING_STATUSES``);
    ``carrier_status`` and ``carrier_detail`` are the carrier's own status and sub-status as it
    sent them, ``raw_status`` the carrier's wording when it has one beyond those."""

    at: datetime
    status: str
    description: str = ""
    location: str = ""
    carrier_status: str = ""
    carrier_detail: str = ""
    raw_status: str = ""


@dataclass(frozen=True)
class Tracking:
    tracking_number: str
    status: str  # ours, of the carrier's latest word on the parcel
    events: list[TrackingEvent] = field(default_factory=list)  # oldest first
    carrier_status: str = ""
    carrier_detail: str = ""
    estimated_delivery_from: datetime | None = None
    estimated_delivery_until: datetime | None = None
    carrier_name: str = ""  # the company doing the delivery (USPS...), when the carrier says


class Carrier(Protocol):
    code: str
    # Where this carrier hosts the label files it links to (``label_url``): host names, or
    # ``.domain`` for a domain and its subdomains. Empty: it never links to one.
    label_hosts: tuple[str, ...]

    def rates(self, request: ShipmentRequest) -> list[Rate]: ...

    def buy(self, request: ShipmentRequest, rate: Rate) -> Label: ...

    def void(self, label: Label) -> bool: ...

    def track(self, tracking_number: str, *, shipped_at: datetime | None = None) -> Tracking:
        """What the carrier says about one parcel now. ``shipped_at`` (when we handed it
        over) is for carriers that need it to answer (the local carrier's simulator);
        carriers with their own tracking ignore it."""
        ...


class CarrierNotConfigured(CarrierError):
    """No carrier answers to this code here (unknown, or its credentials are not set)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class NoRateAvailable(CarrierError):
    """No quote meets the service level asked for: asking again gives the same quotes."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def web_link(url: str | None) -> str:
    """``url`` when it may be shown to a person or a customer as a link (a carrier's tracking
    page: an email, a text message, the admin): https with a host, no credentials, no whitespace
    or control characters. Anything else (``javascript:``, ``data:``, plain http) is ``""``: a
    carrier's answer never becomes a link we did not mean to send."""
    if not url or any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        return ""
    if parts.scheme != "https" or not parts.hostname:
        return ""
    if parts.username is not None or parts.password is not None:
        return ""
    return url


def label_url_is_trusted(url: str, hosts: Iterable[str]) -> bool:
    """Whether ``url`` may be linked to and redirected to as a carrier's label file: https, on
    the default port, no credentials, no whitespace or control characters, and its host one of
    ``hosts`` (``.domain``: the domain or any subdomain of it). Anything else (``javascript:``,
    plain http, another host) is shown as text only."""
    if not url or any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number
        return False
    if parts.scheme != "https" or parts.username is not None or parts.password is not None:
        return False
    if port not in (None, 443):
        return False
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return False
    for allowed in hosts:
        allowed = allowed.lower()
        if allowed.startswith("."):
            if host == allowed[1:] or host.endswith(allowed):
                return True
        elif host == allowed:
            return True
    return False
