"""EasyPost behind the carrier interface: its REST API v2 over ``requests`` (no SDK).

Calls (base URL ``EASYPOST_API_BASE``, API key ``EASYPOST_API_KEY`` as the basic-auth user name):

- ``rates()``: ``GET /shipments/{reference}`` first (EasyPost accepts a ``reference`` in place of
  an id); if a shipment with our reference is already *purchased*, its rates are returned, so a
  retry after a lost answer goes on to find that label (below) instead of rating, and buying, a
  second shipment. Otherwise ``POST /shipments`` (addresses, parcel weight in ounces, options,
  ``customs_info`` when the request declares customs lines, ``reference``) and its ``rates[]``.
  A return (``request.is_return``) is created with ``is_return: true`` and the outbound
  shipment's addresses (to: the customer, from: the warehouse); EasyPost swaps them.
- ``buy()``: ``POST /shipments/{id}/buy`` with the rate id. If EasyPost refuses (a 4xx: it
  answers that way when the shipment already has postage, e.g. we bought it and lost the
  answer), ``GET /shipments/{id}``: a shipment that has a label is returned as it is, never
  bought twice. Otherwise the refusal stands.
- ``void()``: ``POST /shipments/{id}/refund``; ``True`` when the refund is submitted or done. A
  refusal is checked the same way (a refund already submitted counts as done).
- ``track()``: ``GET /trackers?tracking_code=...`` (EasyPost made the tracker when it sold the
  label). ``tracking_from_tracker`` also reads a shipment's embedded ``tracker`` and a
  ``tracker.updated`` webhook's ``result``.
- ``verify_webhook()``: the ``X-Hmac-Signature`` check of EasyPost's client libraries.

Retries: only calls that are safe to repeat (the GETs) are retried here, after a 429, a 5xx or
a failed connection, with exponential backoff and jitter (``Retry-After`` honoured, capped). A
read timeout is not retried here: the caller's outbox tries again later, so a slow EasyPost
costs one read timeout per attempt. POSTs are never repeated here: a repeated create makes a
second shipment, a repeated buy could pay twice. What still fails raises ``EasyPostError``:
``retryable=True`` for 408, 429, 5xx, timeouts and connection failures; ``False`` for other
4xx, with EasyPost's own message (and field errors).

Service levels (``service_level_for``): a table of well-known (carrier, service) pairs, then
keywords in the service name, then ``economy``. Unknown services count as the slowest level so
that a guess never satisfies a faster request.

=============================  =========================================================
level                          services (EasyPost names; case and punctuation ignored)
=============================  =========================================================
economy                        USPS ParcelSelect, MediaMail, LibraryMail, FirstClass...
                               International; FedEx SMART_POST, GROUND_ECONOMY; UPS
                               SurePost; names with "economy", "smartpost", "surepost"
ground                         USPS GroundAdvantage, First; UPS Ground, UPSStandard; FedEx
                               FEDEX_GROUND, GROUND_HOME_DELIVERY; names with "ground",
                               "standard", "regular", "home"
express                        USPS Priority, Express, PriorityMailInternational,
                               ExpressMailInternational; UPS 3DaySelect, 2ndDayAir(AM),
                               Expedited; FedEx FEDEX_2_DAY(_AM), FEDEX_EXPRESS_SAVER,
                               INTERNATIONAL_PRIORITY; names with "express", "priority",
                               "2day", "2ndday", "3day", "expedited", "saver"
premium                        UPS NextDayAir, NextDayAirSaver, NextDayAirEarlyAM, UPSSaver,
                               Express(Plus) (UPS international); FedEx STANDARD_OVERNIGHT,
                               PRIORITY_OVERNIGHT, FIRST_OVERNIGHT, INTERNATIONAL_FIRST;
                               names with "overnight", "nextday", "earlyam", "sameday"
=============================  =========================================================

Logs carry the call, status, EasyPost's error code, shipment id, tracking number, reference and
country codes; never addresses, names, request or response bodies, or error messages (EasyPost
quotes the address it could not verify).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import structlog
from django.conf import settings

from config import correlation, integrations
from fulfillment.carriers.base import (
    CarrierError,
    CarrierNotConfigured,
    CustomsLine,
    Label,
    Rate,
    ShipmentRequest,
    Tracking,
    TrackingEvent,
    web_link,
)
from orders import money

log = structlog.get_logger(__name__)

CODE = "easypost"
# EasyPost keeps the label files it sells on its S3 bucket (``label_url`` in
# samples/easypost/shipment_buy_response.json: easypost-files.s3.us-west-2.amazonaws.com; the
# bucket's older path-style names too) and its own domain. Nothing else is linked to.
LABEL_HOSTS = (
    "easypost-files.s3.us-west-2.amazonaws.com",
    "easypost-files.s3-us-west-2.amazonaws.com",
    "easypost-files.s3.amazonaws.com",
    ".easypost.com",
)
DEFAULT_API_BASE = "https://api.easypost.com/v2"
MAX_BACKOFF_SECONDS = 8.0
USER_AGENT = "orderdesk/0.1 (+carrier adapters)"
MAX_MESSAGE_CHARS = 500

GRAMS_PER_OUNCE = Decimal("28.349523125")
LABEL_FORMAT = "PDF"
EEL_PFC = "NOEEI 30.37(a)"  # US exports under USD 2,500 per Schedule B number

HMAC_HEADER = "X-Hmac-Signature"
HMAC_PREFIX = "hmac-sha256-hex="

REFUNDED = frozenset({"submitted", "refunded"})

# EasyPost tracker and tracking-detail statuses -> ours (``base.TRACKING_STATUSES``). A status
# we do not know claims no progress: unknown. The raw status and ``status_detail`` are kept.
TRACKING_STATUSES = {
    "unknown": "unknown",
    "pre_transit": "pre_transit",
    "in_transit": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "available_for_pickup": "available_for_pickup",
    "delivered": "delivered",
    "return_to_sender": "return_to_sender",
    "failure": "exception",
    "error": "exception",
    "cancelled": "cancelled",
}
# Sub-statuses of ``failure`` that mean "tried, will try again" rather than a lost parcel.
FAILED_ATTEMPT_DETAILS = frozenset({"delivery_exception", "address_not_found", "no_access",
                                    "attempted_delivery", "recipient_not_available"})  # fmt: skip


# --- errors and HTTP ---------------------------------------------------------------------------
class EasyPostError(CarrierError):
    """A failed EasyPost call; ``code`` is EasyPost's machine-readable error code, if any."""

    def __init__(self, message: str, *, retryable: bool, code: str = "", **facts: Any) -> None:
        super().__init__(message, retryable=retryable, **facts)
        self.code = code


def _error_text(body: Any) -> tuple[str, str]:
    """EasyPost's error message with its field errors, and its code, from an error body."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return "", ""
    parts = [str(error.get("message") or "").strip()]
    for item in error.get("errors") or []:
        if isinstance(item, Mapping):
            field, text = item.get("field"), item.get("message")
            parts.append(f"{field}: {text}" if field else str(text or ""))
        elif item:
            parts.append(str(item))
    message = "; ".join(p for p in parts if p)
    return message[:MAX_MESSAGE_CHARS], str(error.get("code") or "")


class EasyPostClient:
    """One EasyPost account: base URL, key, timeouts and the retry policy of the module doc,
    over the integration layer (``config.integrations``)."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: tuple[float, float],
        retries: int,
        backoff: float,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def _session(self, *, idempotent: bool) -> integrations.IntegrationSession:
        policy = integrations.RetryPolicy(
            retries=self.retries if idempotent else 0,  # a POST is never repeated here
            backoff=self.backoff,
            backoff_max=MAX_BACKOFF_SECONDS,
            jitter=self.backoff,
            retry_reads=False,  # the outbox tries again: one read timeout per attempt
            max_retry_after=MAX_BACKOFF_SECONDS,
        )
        return integrations.session(
            timeout=self.timeout, user_agent=USER_AGENT, policy=policy, error=EasyPostError,
            log_event="easypost.failed", prefix="EasyPost ", logger=log,
        )  # fmt: skip

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        idempotent: bool,
        payload: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        correlation_id: str = "",
        absent: frozenset[int] = frozenset(),
    ) -> Any:
        """Send one call (retried only when ``idempotent``); return its parsed JSON body, with
        every JSON number as ``Decimal``, or ``None`` for a status in ``absent`` (an expected
        "no such thing"). Raise ``EasyPostError`` otherwise."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        headers = {"Accept": "application/json"}
        if correlation_id:  # the shipment's own id wins over the one bound (the layer's default)
            headers[correlation.HEADER] = correlation_id
        with self._session(idempotent=idempotent) as session:
            response = session.call(
                method, url, what=what, accept=integrations.ANY_STATUS, json=payload,
                params=params, headers=headers, auth=(self.api_key, ""),
            )  # fmt: skip
            status = response.status_code
            if 200 <= status < 300:
                # Decimal for every number: amounts arrive as strings, nothing becomes a float.
                return session.json_of(response, what=what, parse_float=Decimal)
            if status in absent:
                response.close()
                return None
            try:
                body = json.loads(response.content or b"null")
            except ValueError:
                body = None
            message, code = _error_text(body)
            # EasyPost's message may quote the address: the layer keeps it out of the log.
            raise session.refusal(response, what=what, message=message, code=code)


# --- mapping -----------------------------------------------------------------------------------
def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", (text or "").lower())


def _carrier_key(carrier: str) -> str:
    key = _key(carrier)
    if key.startswith("fedex"):
        return "fedex"  # FedEx, FedExDefault, FedExSmartPost
    if key.startswith("ups") and not key.startswith("usps"):
        return "ups"  # UPS, UPSDAP, UPSMailInnovations
    return key


SERVICE_LEVEL_TABLE: dict[tuple[str, str], str] = {
    ("usps", "parcelselect"): "economy",
    ("usps", "mediamail"): "economy",
    ("usps", "librarymail"): "economy",
    ("usps", "firstclassmailinternational"): "economy",
    ("usps", "firstclasspackageinternationalservice"): "economy",
    ("usps", "groundadvantage"): "ground",
    ("usps", "first"): "ground",
    ("usps", "priority"): "express",
    ("usps", "express"): "express",
    ("usps", "prioritymailinternational"): "express",
    ("usps", "expressmailinternational"): "express",
    ("ups", "surepostlessthan1lb"): "economy",
    ("ups", "surepostover1lb"): "economy",
    ("ups", "ground"): "ground",
    ("ups", "upsstandard"): "ground",
    ("ups", "3dayselect"): "express",
    ("ups", "2nddayair"): "express",
    ("ups", "2nddayairam"): "express",
    ("ups", "expedited"): "express",
    ("ups", "nextdayairsaver"): "premium",
    ("ups", "nextdayair"): "premium",
    ("ups", "nextdayairearlyam"): "premium",
    ("ups", "upssaver"): "premium",
    ("ups", "express"): "premium",
    ("ups", "expressplus"): "premium",
    ("fedex", "smartpost"): "economy",
    ("fedex", "groundeconomy"): "economy",
    ("fedex", "fedexground"): "ground",
    ("fedex", "groundhomedelivery"): "ground",
    ("fedex", "internationaleconomy"): "ground",
    ("fedex", "fedex2day"): "express",
    ("fedex", "fedex2dayam"): "express",
    ("fedex", "fedexexpresssaver"): "express",
    ("fedex", "internationalpriority"): "express",
    ("fedex", "standardovernight"): "premium",
    ("fedex", "priorityovernight"): "premium",
    ("fedex", "firstovernight"): "premium",
    ("fedex", "internationalfirst"): "premium",
}
# Checked in this order: "StandardOvernight" is premium, "GroundEconomy" economy.
SERVICE_LEVEL_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("premium", ("overnight", "nextday", "earlyam", "sameday")),
    ("economy", ("economy", "smartpost", "surepost", "parcelselect", "mediamail", "deferred")),
    ("express", ("express", "priority", "2day", "2ndday", "3day", "expedited", "saver")),
    ("ground", ("ground", "standard", "regular", "home")),
)


def service_level_for(carrier: str, service: str) -> str:
    """Our service level for an EasyPost (carrier, service) pair (see the module doc)."""
    key = _key(service)
    level = SERVICE_LEVEL_TABLE.get((_carrier_key(carrier), key))
    if level is not None:
        return level
    for candidate, words in SERVICE_LEVEL_KEYWORDS:
        if any(word in key for word in words):
            return candidate
    return "economy"


def _amount(value: Any, currency: str) -> Decimal:
    if value is None or isinstance(value, bool | float):
        raise EasyPostError(f"EasyPost sent an amount that is not one: {value!r}", retryable=False)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise EasyPostError(f"EasyPost sent a bad amount: {value!r}", retryable=False) from None
    # "6.07000" -> 6.07: EasyPost amounts are exact; extra places are zeros.
    return money.quantize(amount, currency, rounding=money.ROUND_HALF_UP)


def _days(rate: Mapping[str, Any]) -> int | None:
    for name in ("delivery_days", "est_delivery_days"):
        value = rate.get(name)
        if value is not None and not isinstance(value, bool):
            return int(value)
    return None


def rate_from_easypost(rate: Mapping[str, Any], *, shipment_id: str = "") -> Rate:
    """Our ``Rate`` for one EasyPost rate. ``service`` names the real carrier too
    (``USPS GroundAdvantage``): every rate's ``carrier`` is ``easypost``, our carrier code."""
    carrier, service = str(rate.get("carrier") or ""), str(rate.get("service") or "")
    currency = str(rate.get("currency") or "USD").upper()
    return Rate(
        carrier=CODE,
        service=f"{carrier} {service}".strip(),
        service_level=service_level_for(carrier, service),
        amount=_amount(rate.get("rate"), currency),
        currency=currency,
        delivery_days=_days(rate),
        rate_id=str(rate.get("id") or ""),
        carrier_shipment_id=str(rate.get("shipment_id") or shipment_id),
    )


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if parsed.tzinfo is None:  # EasyPost times are UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _location(place: Any) -> str:
    if not isinstance(place, Mapping):
        return ""
    parts = (place.get("city"), place.get("state"), place.get("country"))
    return ", ".join(str(p) for p in parts if p)


def tracking_status(status: str | None, detail: str | None = None) -> str:
    """Our tracking status for an EasyPost one (``unknown`` for what we do not know)."""
    ours = TRACKING_STATUSES.get(str(status or "unknown"), "unknown")
    if ours == "exception" and str(detail or "") in FAILED_ATTEMPT_DETAILS:
        return "failed_attempt"
    return ours


def tracking_from_tracker(tracker: Mapping[str, Any]) -> Tracking:
    """A ``Tracking`` from an EasyPost Tracker (a tracker list item, a shipment's ``tracker``,
    or the ``result`` of a ``tracker.updated`` webhook event); events oldest first.

    ``est_delivery_date`` is a day (EasyPost sends midnight UTC): the window is that whole day.
    """
    events = []
    for detail in tracker.get("tracking_details") or []:
        at = _time(detail.get("datetime"))
        if at is None:
            continue
        status, sub = str(detail.get("status") or ""), str(detail.get("status_detail") or "")
        events.append(
            TrackingEvent(
                at=at,
                status=tracking_status(status, sub),
                description=str(detail.get("message") or detail.get("description") or ""),
                location=_location(detail.get("tracking_location")),
                carrier_status=status,
                carrier_detail=sub,
                raw_status=str(detail.get("carrier_code") or ""),
            )
        )
    events.sort(key=lambda event: event.at)
    estimate = _time(tracker.get("est_delivery_date"))
    status, sub = str(tracker.get("status") or ""), str(tracker.get("status_detail") or "")
    return Tracking(
        tracking_number=str(tracker.get("tracking_code") or ""),
        status=tracking_status(status, sub),
        events=events,
        carrier_status=status,
        carrier_detail=sub,
        estimated_delivery_from=estimate,
        estimated_delivery_until=estimate + timedelta(days=1) - timedelta(seconds=1)
        if estimate is not None
        else None,
        carrier_name=str(tracker.get("carrier") or ""),
    )


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return str(value or "")


def verify_webhook(body: bytes, headers: Mapping[str, str], secret: str) -> bool:
    """Whether ``X-Hmac-Signature`` is ``hmac-sha256-hex=`` + hex HMAC-SHA256 of the raw body.

    The key is the webhook secret NFKD-normalized, then UTF-8 encoded, as EasyPost's own
    libraries do it (easypost-python ``validate_webhook``): a secret typed with composed
    accents ("sécret") signs with the decomposed form. Constant-time comparison.
    """
    received = _header(headers, HMAC_HEADER).strip()
    if not secret or not received:
        return False
    key = unicodedata.normalize("NFKD", secret).encode("utf-8")
    expected = HMAC_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), received.encode("utf-8", "replace"))


# --- request bodies ----------------------------------------------------------------------------
def ounces(grams: int) -> Decimal:
    """Grams in ounces, rounded up to the tenth EasyPost takes (never under-declared)."""
    oz = (Decimal(grams) / GRAMS_PER_OUNCE).quantize(Decimal("0.1"), rounding=ROUND_CEILING)
    return max(oz, Decimal("0.1"))


def _address(address: Mapping[str, Any]) -> dict[str, str]:
    fields = {
        "name": address.get("name"),
        "company": address.get("company"),
        "street1": address.get("line1"),
        "street2": address.get("line2"),
        "city": address.get("city"),
        "state": address.get("region_code"),
        "zip": address.get("postal_code"),
        "country": address.get("country_code"),
        "phone": address.get("phone"),
        "email": address.get("email"),
    }
    return {name: str(value) for name, value in fields.items() if value}


def _customs_item(line: CustomsLine, fallback_grams: int) -> dict[str, Any]:
    item: dict[str, Any] = {
        "description": (line.description or line.sku)[:255],
        "quantity": line.quantity,
        "value": str(line.value),  # the whole line's value; a string keeps it exact
        "currency": line.currency,
        "weight": float(ounces(line.weight_grams or fallback_grams)),
        "code": line.sku,
    }
    if line.hs_code:
        item["hs_tariff_number"] = line.hs_code
    if line.origin_country:
        item["origin_country"] = line.origin_country
    return item


def shipment_payload(
    request: ShipmentRequest, *, label_format: str, customs_signer: str, eel_pfc: str
) -> dict[str, Any]:
    """The ``POST /shipments`` body for ``request``."""
    options: dict[str, Any] = {
        "label_format": label_format,
        "label_size": "4x6",
        "print_custom_1": request.reference,
    }
    if request.signature_required:
        options["delivery_confirmation"] = "SIGNATURE"
    to_address, from_address = request.ship_to, request.ship_from
    if request.is_return:
        # EasyPost's returns: send the addresses of the outbound shipment (to: the customer,
        # from: the warehouse) with ``is_return``; EasyPost swaps them for the return label.
        to_address, from_address = request.ship_from, request.ship_to
    shipment: dict[str, Any] = {
        "reference": request.reference,
        "to_address": _address(to_address),
        "from_address": _address(from_address),
        "parcel": {"weight": float(ounces(request.weight_grams))},
        "options": options,
    }
    if request.is_return:
        shipment["is_return"] = True
    if request.customs:
        options["currency"] = request.customs[0].currency
        share = max(1, request.weight_grams // len(request.customs))
        signer = customs_signer or str(
            request.ship_from.get("company") or request.ship_from.get("name") or ""
        )
        shipment["customs_info"] = {
            "contents_type": "merchandise",
            "customs_certify": True,
            "customs_signer": signer,
            "eel_pfc": eel_pfc,
            "non_delivery_option": "return",
            "restriction_type": "none",
            "customs_items": [_customs_item(line, share) for line in request.customs],
        }
    return {"shipment": shipment}


# --- the carrier -------------------------------------------------------------------------------
def _purchased(shipment: Any) -> bool:
    return (
        isinstance(shipment, Mapping)
        and bool(shipment.get("tracking_code"))
        and isinstance(shipment.get("postage_label"), Mapping)
    )


def _countries(request: ShipmentRequest) -> dict[str, str]:
    return {
        "from_country": str(request.ship_from.get("country_code") or ""),
        "to_country": str(request.ship_to.get("country_code") or ""),
    }


class EasyPostCarrier:
    """EasyPost (``code = "easypost"``). Settings are read when it is made; pass values to
    override them (tests, a second account)."""

    code = CODE
    label_hosts = LABEL_HOSTS

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: tuple[float, float] | None = None,
        retries: int | None = None,
        backoff: float | None = None,
    ) -> None:
        api_key = api_key if api_key is not None else settings.EASYPOST_API_KEY
        if not api_key:
            raise CarrierNotConfigured("EasyPost is not configured: set EASYPOST_API_KEY")
        connect, read = timeout or settings.EASYPOST_TIMEOUT
        self.client = EasyPostClient(
            api_key=api_key,
            base_url=base_url or settings.EASYPOST_API_BASE or DEFAULT_API_BASE,
            timeout=(float(connect), float(read)),
            retries=settings.EASYPOST_RETRIES if retries is None else retries,
            # Tests set EASYPOST_BACKOFF = 0 so retries against loopback do not wait.
            backoff=settings.EASYPOST_BACKOFF if backoff is None else backoff,
        )
        self.label_format = settings.EASYPOST_LABEL_FORMAT
        self.customs_signer = settings.EASYPOST_CUSTOMS_SIGNER
        self.eel_pfc = settings.EASYPOST_EEL_PFC

    # rates -------------------------------------------------------------------------------------
    def rates(self, request: ShipmentRequest) -> list[Rate]:
        if not request.reference:
            raise CarrierError("EasyPost shipments need our reference", retryable=False)
        if request.weight_grams <= 0:
            raise CarrierError("A parcel must weigh something", retryable=False)
        shipment = self._purchased_for(request)
        if shipment is None:
            payload = shipment_payload(
                request, label_format=self.label_format, customs_signer=self.customs_signer,
                eel_pfc=self.eel_pfc,
            )  # fmt: skip
            shipment = self.client.call(
                "POST", "shipments", what="create shipment", idempotent=False, payload=payload,
                correlation_id=request.correlation_id,
            )  # fmt: skip
        rates = self._rates_of(shipment)
        log.info(
            "easypost.rated", reference=request.reference, shipment_id=shipment.get("id"),
            rates=len(rates), customs_lines=len(request.customs), **_countries(request),
        )  # fmt: skip
        return rates

    def _purchased_for(self, request: ShipmentRequest) -> Mapping[str, Any] | None:
        """The shipment already bought under our reference, if EasyPost knows one."""
        shipment = self.client.call(
            "GET", f"shipments/{quote(request.reference, safe='')}", what="find shipment",
            idempotent=True, correlation_id=request.correlation_id,
            absent=frozenset({400, 404, 422}),  # no such shipment (or no lookup by reference)
        )  # fmt: skip
        if not _purchased(shipment) or shipment.get("reference") != request.reference:
            return None
        log.info(
            "easypost.reference_already_purchased", reference=request.reference,
            shipment_id=shipment.get("id"), tracking_number=shipment.get("tracking_code"),
        )  # fmt: skip
        return shipment

    def _rates_of(self, shipment: Any) -> list[Rate]:
        if not isinstance(shipment, Mapping):
            raise EasyPostError("EasyPost answered without a shipment", retryable=True)
        shipment_id = str(shipment.get("id") or "")
        quotes = shipment.get("rates") or []
        if not quotes and isinstance(shipment.get("selected_rate"), Mapping):
            quotes = [shipment["selected_rate"]]  # a bought shipment: at least what it bought
        rates = [rate_from_easypost(rate, shipment_id=shipment_id) for rate in quotes]
        if not rates:
            messages = [
                f"{m.get('carrier') or 'EasyPost'}: {m.get('message')}"
                for m in shipment.get("messages") or []
                if isinstance(m, Mapping)
            ]
            raise EasyPostError(
                "EasyPost returned no rates" + (f" ({'; '.join(messages)})" if messages else ""),
                retryable=False,
            )
        return rates

    # buy ---------------------------------------------------------------------------------------
    def buy(self, request: ShipmentRequest, rate: Rate) -> Label:
        shipment_id, rate_id = rate.carrier_shipment_id, rate.rate_id
        if rate.carrier != CODE or not shipment_id or not rate_id:
            raise CarrierError(
                f"Not an EasyPost quote: {rate.carrier}/{rate.service}", retryable=False
            )
        try:
            shipment = self.client.call(
                "POST", f"shipments/{quote(shipment_id, safe='')}/buy", what="buy label",
                idempotent=False, payload={"rate": {"id": rate_id}},
                correlation_id=request.correlation_id,
            )  # fmt: skip
        except EasyPostError as exc:
            shipment = self._already_done(exc, shipment_id, request.correlation_id, _purchased)
            log.info(
                "easypost.label_already_purchased", reference=request.reference,
                shipment_id=shipment_id, code=exc.code, status=exc.status,
            )  # fmt: skip
        label = self._label_of(shipment)
        log.info(
            "easypost.label_purchased", reference=request.reference, shipment_id=shipment_id,
            tracking_number=label.tracking_number, service=label.service, **_countries(request),
        )  # fmt: skip
        return label

    def _already_done(
        self,
        refusal: EasyPostError,
        shipment_id: str,
        correlation_id: str,
        done: Callable[[Any], bool],
    ) -> Mapping[str, Any]:
        """After EasyPost refused a POST: the shipment if it shows the work done already (a
        retry after a lost answer), else the refusal is raised again."""
        if refusal.retryable or refusal.status in (401, 403):
            raise refusal
        shipment = self.client.call(
            "GET", f"shipments/{quote(shipment_id, safe='')}", what="get shipment",
            idempotent=True, correlation_id=correlation_id,
        )  # fmt: skip
        if not done(shipment):
            raise refusal
        return shipment

    def _label_of(self, shipment: Any) -> Label:
        if not _purchased(shipment):
            raise EasyPostError("EasyPost sold no label (no tracking code yet)", retryable=True)
        postage = shipment["postage_label"]
        selected = shipment.get("selected_rate")
        if not isinstance(selected, Mapping):
            raise EasyPostError("EasyPost sold a label without its rate", retryable=False)
        shipment_id = str(shipment.get("id") or "")
        rate = rate_from_easypost(selected, shipment_id=shipment_id)
        tracker = shipment.get("tracker")
        public_url = tracker.get("public_url") if isinstance(tracker, Mapping) else None
        tracking_url = web_link(str(public_url or ""))  # never a javascript: or http link
        return Label(
            carrier=CODE,
            service=rate.service,
            tracking_number=str(shipment["tracking_code"]),
            carrier_shipment_id=shipment_id,
            rate=rate,
            label_url=str(
                postage.get("label_pdf_url")
                or postage.get("label_url")
                or postage.get("label_zpl_url")
                or ""
            ),
            tracking_url=tracking_url,
        )

    # void --------------------------------------------------------------------------------------
    def void(self, label: Label) -> bool:
        """Ask EasyPost to refund the label: ``True`` once the refund is submitted or done."""
        shipment_id = label.carrier_shipment_id
        if not shipment_id:
            raise CarrierError("No EasyPost shipment id on this label", retryable=False)

        def refunded(shipment: Any) -> bool:
            return isinstance(shipment, Mapping) and shipment.get("refund_status") in REFUNDED

        try:
            shipment = self.client.call(
                "POST", f"shipments/{quote(shipment_id, safe='')}/refund", what="refund label",
                idempotent=False,
            )  # fmt: skip
        except EasyPostError as exc:
            shipment = self._already_done(exc, shipment_id, "", refunded)
        status = shipment.get("refund_status") if isinstance(shipment, Mapping) else None
        log.info(
            "easypost.refund", shipment_id=shipment_id, tracking_number=label.tracking_number,
            refund_status=status,
        )  # fmt: skip
        return refunded(shipment)

    # track -------------------------------------------------------------------------------------
    def track(self, tracking_number: str, *, shipped_at: datetime | None = None) -> Tracking:
        """EasyPost's tracker for ``tracking_number`` (``shipped_at`` is not needed: ignored)."""
        body = self.client.call(
            "GET", "trackers", what="list trackers", idempotent=True,
            params={"tracking_code": tracking_number},
        )  # fmt: skip
        trackers = [
            t for t in (body.get("trackers") if isinstance(body, Mapping) else None) or []
            if isinstance(t, Mapping) and t.get("tracking_code") == tracking_number
        ]  # fmt: skip
        if not trackers:
            raise EasyPostError(f"EasyPost has no tracker for {tracking_number}", retryable=False)
        latest = max(trackers, key=lambda t: str(t.get("updated_at") or t.get("created_at") or ""))
        return tracking_from_tracker(latest)
