"""Amazon Selling Partner API (Orders v0): polled, never pushed.

SP-API has no HTTP webhooks (its notifications go to an SQS queue or EventBridge), so
``verify`` refuses every delivery and orders come in through ``poll()``: getOrders by
``LastUpdatedAfter`` and, for each order, getOrderItems. Each order version is stored in the
inbox as ``{"order": <getOrders Orders[] item>, "items": [<getOrderItems OrderItems[] item>]}``
(``amazon_order.v0.json``) and normalized like any other delivery.

Credentials (``channel.credentials``): ``client_id``, ``client_secret``, ``refresh_token`` (Login
with Amazon), ``marketplace_ids`` (a list or comma-separated), optional ``lwa_token_url``.
``api_base_url`` is the regional endpoint, e.g. ``https://sellingpartnerapi-na.amazon.com``.

Refunds come from the Finances API (``listFinancialEvents``), polled by
``channels.polling.channel_refunds_poll``: each refund, chargeback or guarantee-claim event is
stored in the inbox as ``{"kind", "event"}`` (``amazon_refund_event.v0.json``, topic
``finances/refund``) with Amazon's amounts as decimal strings, and ``read_refund`` reads it into
a canonical refund (``refund_event_canonical``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

import structlog

from channels.adapters import normalize
from channels.adapters.base import (
    AdapterError,
    ChannelConfig,
    Delivery,
    NormalizationError,
    SignatureInvalid,
)
from channels.adapters.normalize import Amounts
from channels.http import ChannelHTTPError, ChannelSession, session_for

log = structlog.get_logger(__name__)

DEFAULT_LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"
TOKEN_EARLY_REFRESH_SECONDS = 60
RATE_LIMIT_HEADER = "x-amzn-RateLimit-Limit"
MAX_PACE_SECONDS = 120.0  # a bogus tiny limit must not park a worker for hours
# 4xx answers read here so that the refusal carries Amazon's reason (408 and 429 are retried by
# the session and reported as retryable like every other).
CLIENT_ERRORS = frozenset(range(400, 500)) - {408, 425, 429}
REASON_CHARS = 200

FINANCIAL_STATUS = {
    "Pending": "pending",
    "PendingAvailability": "pending",
    "Unshipped": "paid",
    "PartiallyShipped": "paid",
    "Shipped": "paid",
    "InvoiceUnconfirmed": "paid",  # shipped; only the invoice confirmation is outstanding
    "Canceled": "voided",
}
# Marketplaces whose prices exclude sales tax (ItemTax is added on top: the sandbox US order
# is 10.00 + 1.01 tax = 11.01). Elsewhere (EU, UK, JP, ...) Amazon prices include VAT or
# consumption tax and ItemTax is the part of ItemPrice that is tax.
TAX_EXCLUSIVE_MARKETPLACES = frozenset({"ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"})  # US, CA
REFUND_TOPIC = "finances/refund"
# The Finances API's lists of money going back to a buyer, each event of ShipmentEvent shape.
REFUND_EVENT_LISTS = MappingProxyType({"RefundEventList": "refund",
                                       "ChargebackEventList": "chargeback",
                                       "GuaranteeClaimEventList": "guarantee_claim"})  # fmt: skip
# Charges that are Amazon's own remittance of the tax it collected (marketplace facilitator),
# not money the buyer gets back: the seller's figures only.
FACILITATOR_PREFIX = "MarketplaceFacilitator"
EXTERNAL_ID_CHARS = 100
ITEM_MONEY = ("ItemPrice", "ItemTax", "PromotionDiscount", "ShippingPrice", "ShippingTax",
              "ShippingDiscount")  # fmt: skip


# --- Login with Amazon access tokens, cached per channel ---------------------------------------
@dataclass(frozen=True)
class _Token:
    fingerprint: str  # of the credentials it was issued for: a new refresh token invalidates it
    value: str
    expires_at: float  # on the clock that cached it


_tokens: dict[int, _Token] = {}
_tokens_lock = threading.Lock()


def forget_token(channel_id: int) -> None:
    """Drop a channel's cached access token (credentials changed, or Amazon refused it)."""
    with _tokens_lock:
        _tokens.pop(channel_id, None)


def _fingerprint(credentials: Mapping[str, Any]) -> str:
    material = "\x00".join(
        str(credentials.get(k, "")) for k in ("client_id", "refresh_token", "lwa_token_url")
    )
    return hashlib.sha256(material.encode()).hexdigest()


def _amazon_reason(response: Any) -> str:
    """Amazon's ``errors[0]`` code and message (SP-API error bodies name the field and the rule,
    not the buyer), shortened; "" when the body says nothing readable."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0] if isinstance(errors, list) and errors else {}
        code, message = str(first.get("code") or ""), str(first.get("message") or "")
    except (ValueError, AttributeError, TypeError):
        return ""
    reason = ": ".join(part for part in (code, message) if part)
    if not reason:
        return ""
    return f"HTTP {response.status_code} {reason}"[:REASON_CHARS]


def _required(credentials: Mapping[str, Any], key: str, channel_id: int) -> str:
    value = credentials.get(key)
    if not value:
        raise AdapterError(
            f"Amazon channel {channel_id} has no {key} in its credentials", retryable=False
        )
    return str(value)


class SpApiClient:
    """Calls to one channel's SP-API endpoint through one session.

    Paces itself by ``x-amzn-RateLimit-Limit`` (requests per second, per operation): once a
    response has stated a limit, the next call of that operation waits until ``1 / limit``
    seconds have passed since the previous one. ``sleep`` and ``clock`` are injectable so tests
    do not wait. 429s and 5xx are retried by the session itself (``channels.http``).
    """

    def __init__(
        self,
        channel: ChannelConfig,
        *,
        session: ChannelSession | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        limits: dict[str, float] | None = None,
        last_calls: dict[str, float] | None = None,
    ) -> None:
        self.channel = channel
        self.session = session or session_for(channel)
        self.sleep, self.clock = sleep, clock
        # Pacing state (requests per second and the last call, per operation): a client's
        # own unless the caller shares one across clients (the tracking write-back paces every
        # confirmShipment of a channel in this process, one client per push).
        self._limits: dict[str, float] = {} if limits is None else limits
        self._last_call: dict[str, float] = {} if last_calls is None else last_calls

    def close(self) -> None:
        self.session.close()

    # --- tokens --------------------------------------------------------------------------
    def access_token(self) -> str:
        creds = self.channel.credentials
        fingerprint = _fingerprint(creds)
        with _tokens_lock:
            cached = _tokens.get(self.channel.id)
        if cached and cached.fingerprint == fingerprint and self.clock() < cached.expires_at:
            return cached.value
        form = {
            "grant_type": "refresh_token",
            "refresh_token": _required(creds, "refresh_token", self.channel.id),
            "client_id": _required(creds, "client_id", self.channel.id),
            "client_secret": _required(creds, "client_secret", self.channel.id),
        }
        url = str(creds.get("lwa_token_url") or DEFAULT_LWA_TOKEN_URL)
        response = self.session.call(
            "POST", url, what="Amazon LWA token exchange", data=form,
            headers={"Accept": "application/json"},
        )  # fmt: skip
        answer = self.session.json_of(response, what="Amazon LWA token exchange") or {}
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not token:
            raise AdapterError("Amazon LWA token exchange: no access_token", retryable=False)
        try:
            lifetime = int(answer.get("expires_in") or 0)
        except (TypeError, ValueError):
            lifetime = 0
        with _tokens_lock:
            _tokens[self.channel.id] = _Token(
                fingerprint=fingerprint,
                value=str(token),
                expires_at=self.clock() + max(0, lifetime - TOKEN_EARLY_REFRESH_SECONDS),
            )
        return str(token)

    # --- calls ---------------------------------------------------------------------------
    def get(
        self, path: str, *, operation: str, params: Mapping[str, str],
        parse_float: Callable[[str], Any] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """GET an SP-API path; the ``payload`` of its answer (the v0 envelope). With
        ``parse_float=Decimal`` Amazon's JSON-number amounts come as Decimals."""
        body = self.get_json(path, operation=operation, params=params, parse_float=parse_float)
        payload = body.get("payload")
        if not isinstance(payload, dict):
            raise AdapterError(f"Amazon {operation}: the answer has no payload", retryable=True)
        return payload

    def get_json(
        self, path: str, *, operation: str, params: Mapping[str, str],
        parse_float: Callable[[str], Any] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """GET an SP-API path; its whole JSON answer (the 2026-01-01 APIs have no envelope)."""
        response = self._send("GET", path, operation=operation, params=dict(params))
        body = self.session.json_of(response, what=f"Amazon {operation}",
                                    parse_float=parse_float) or {}  # fmt: skip
        if not isinstance(body, dict):
            raise AdapterError(f"Amazon {operation}: the answer is not an object", retryable=True)
        return body

    def post(self, path: str, *, operation: str, body: Mapping[str, Any]) -> int:
        """POST a JSON body to an SP-API path, paced like every call; the answer's status
        (confirmShipment answers 204). A refusal carries Amazon's own error code and message
        (``errors[].code``/``message``). Only for operations that are safe to repeat (the
        session retries a 429 or a 5xx): confirmShipment re-sent with the same
        ``packageReferenceId`` edits the package instead of adding one."""
        response = self._send("POST", path, operation=operation, json=dict(body))
        status = response.status_code
        response.close()
        return status

    def _send(self, method: str, path: str, *, operation: str, **kwargs: Any) -> Any:
        self._pace(operation)
        url = f"{self.channel.api_base_url.rstrip('/')}{path}"
        headers = {"x-amz-access-token": self.access_token(), "Accept": "application/json"}
        what = f"Amazon {operation}"
        try:
            response = self.session.call(
                method, url, what=what, headers=headers, accept=CLIENT_ERRORS, **kwargs
            )
            if response.status_code in CLIENT_ERRORS:
                raise self.session.refusal(response, what=what, message=_amazon_reason(response))
        except ChannelHTTPError as exc:
            if exc.status in (401, 403):
                forget_token(self.channel.id)  # expired or revoked: the next run asks afresh
            raise
        finally:
            self._last_call[operation] = self.clock()
        self._note_limit(operation, response.headers.get(RATE_LIMIT_HEADER))
        return response

    def _pace(self, operation: str) -> None:
        limit, last = self._limits.get(operation), self._last_call.get(operation)
        if not limit or last is None:
            return
        wait = min(1.0 / limit, MAX_PACE_SECONDS) - (self.clock() - last)
        if wait > 0:
            self.sleep(wait)

    def _note_limit(self, operation: str, header: str | None) -> None:
        if not header:
            return
        try:
            limit = float(header)  # requests per second; not money
        except ValueError:
            return
        if limit <= 0:
            return
        if self._limits.get(operation) != limit:
            log.info(
                "amazon.rate_limit",
                channel_id=self.channel.id,
                operation=operation,
                limit_per_second=limit,
            )
        self._limits[operation] = limit

    # --- Orders v0 -----------------------------------------------------------------------
    def orders(self, *, updated_after: datetime) -> Iterator[dict[str, Any]]:
        """getOrders since ``updated_after``, following ``NextToken`` to the last page."""
        marketplaces = self.marketplace_ids()
        params = {"MarketplaceIds": marketplaces, "LastUpdatedAfter": _iso_z(updated_after)}
        while True:
            page = self.get("/orders/v0/orders", operation="getOrders", params=params)
            yield from page.get("Orders") or []
            token = page.get("NextToken")
            if not token:
                return
            # With NextToken every other filter is ignored; MarketplaceIds is still required.
            params = {"MarketplaceIds": marketplaces, "NextToken": str(token)}

    def order_items(self, order_id: str) -> list[dict[str, Any]]:
        """getOrderItems for one order, all pages."""
        path = f"/orders/v0/orders/{quote(order_id, safe='')}/orderItems"
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        while True:
            page = self.get(path, operation="getOrderItems", params=params)
            items.extend(page.get("OrderItems") or [])
            token = page.get("NextToken")
            if not token:
                return items
            params = {"NextToken": str(token)}

    # --- Finances v0 ---------------------------------------------------------------------
    def financial_events(self, *, posted_after: datetime) -> Iterator[dict[str, Any]]:
        """listFinancialEvents posted after ``posted_after``: each page's ``FinancialEvents``,
        following ``NextToken``. Amounts (``CurrencyAmount``, JSON numbers) come as Decimals."""
        what = "listFinancialEvents"
        params: dict[str, str] = {"PostedAfter": _iso_z(posted_after), "MaxResultsPerPage": "100"}
        while True:
            response = self._send("GET", "/finances/v0/financialEvents", operation=what,
                                  params=params)  # fmt: skip
            body = self.session.json_of(response, what=f"Amazon {what}", parse_float=Decimal)
            page = body.get("payload") if isinstance(body, dict) else None
            if not isinstance(page, dict):
                raise AdapterError(f"Amazon {what}: the answer has no payload", retryable=True)
            events = page.get("FinancialEvents")
            yield events if isinstance(events, dict) else {}
            token = page.get("NextToken")
            if not token:
                return
            params = {"NextToken": str(token)}

    def marketplace_ids(self) -> str:
        value = self.channel.credentials.get("marketplace_ids")
        ids = value.split(",") if isinstance(value, str) else list(value or [])
        ids = [str(i).strip() for i in ids if str(i).strip()]
        if not ids:
            raise AdapterError(
                f"Amazon channel {self.channel.id} has no marketplace_ids in its credentials",
                retryable=False,
            )
        return ",".join(ids)


class AmazonChannelAdapter:
    kind = "amazon"

    def verify(
        self, channel: ChannelConfig, headers: Mapping[str, str], body: bytes, *, now: datetime
    ) -> Delivery:
        raise SignatureInvalid("Amazon orders are polled, not pushed", code="not_pushed")

    def payload_schema(self, topic: str, api_version: str) -> str:
        if topic == REFUND_TOPIC:
            return "amazon_refund_event.v0.json"
        return "amazon_order.v0.json"

    def read_refund(
        self, channel: ChannelConfig, payload: Mapping[str, Any], topic: str
    ) -> tuple[str, dict[str, Any]] | None:
        """(AmazonOrderId, canonical refund) of a stored Finances refund event; None for orders."""
        if topic != REFUND_TOPIC:
            return None
        event = payload["event"]
        canonical = refund_event_canonical(str(payload["kind"]), event, channel)
        canonical["order_external_id"] = str(event["AmazonOrderId"])
        return str(event["AmazonOrderId"]), canonical

    def poll_refunds(
        self,
        channel: ChannelConfig,
        *,
        posted_after: datetime,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Iterator[tuple[dict[str, Any], str, datetime]]:
        """Each refund-like financial event posted after ``posted_after``: (the inbox payload,
        its dedup key, its PostedDate). Other event lists (fees, shipments...) are skipped."""
        if posted_after.tzinfo is None:
            raise ValueError("posted_after must be timezone-aware")
        client = SpApiClient(channel, sleep=sleep, clock=clock)
        try:
            for page in client.financial_events(posted_after=posted_after):
                for list_name, kind in REFUND_EVENT_LISTS.items():
                    for event in page.get(list_name) or []:
                        posted = _parse_time(event.get("PostedDate"))
                        if not event.get("AmazonOrderId") or posted is None:
                            raise AdapterError(
                                f"Amazon listFinancialEvents: a {list_name} entry without "
                                "AmazonOrderId or a valid PostedDate",
                                retryable=False,
                            )
                        stored = {"kind": kind, "event": _decimals_as_strings(event)}
                        key = f"finances:{refund_event_id(kind, stored['event'])}"
                        yield stored, key, posted
        finally:
            client.close()

    def fetch(self, channel: ChannelConfig, payload: Mapping[str, Any]) -> None:
        return None  # the poll already stored the order with its items

    def cancelled_external_id(self, payload: Mapping[str, Any], topic: str) -> str | None:
        """A Canceled order whose items all say 0 ordered (Amazon zeroes them on cancel) has
        no line to normalize: treat it as a thin cancellation of the order we hold."""
        order = payload.get("order") or {}
        items = payload.get("items") or []
        if order.get("OrderStatus") == "Canceled" and not any(
            (item.get("QuantityOrdered") or 0) > 0 for item in items
        ):
            return str(order["AmazonOrderId"])
        return None

    destructive_topics: Mapping[str, str] = MappingProxyType({})

    def confirm_cancel(
        self, channel: ChannelConfig, payload: Mapping[str, Any], topic: str
    ) -> bool | None:
        """No destructive topics: orders are polled from the API, never pushed, so the status
        comes from Amazon itself. Never asked."""
        return None

    def poll(
        self,
        channel: ChannelConfig,
        *,
        updated_after: datetime,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Iterator[tuple[dict[str, Any], datetime]]:
        """Each order updated after ``updated_after`` with its items, and its LastUpdateDate."""
        if updated_after.tzinfo is None:
            raise ValueError("updated_after must be timezone-aware")
        client = SpApiClient(channel, sleep=sleep, clock=clock)
        try:
            for order in client.orders(updated_after=updated_after):
                order_id = str(order.get("AmazonOrderId") or "")
                last_update = _parse_time(order.get("LastUpdateDate"))
                if not order_id or last_update is None:
                    raise AdapterError(
                        "Amazon getOrders returned an order without AmazonOrderId or a valid "
                        f"LastUpdateDate ({order_id or 'no id'})",
                        retryable=False,
                    )
                yield {"order": order, "items": client.order_items(order_id)}, last_update
        finally:
            client.close()

    def normalize(
        self, payload: Mapping[str, Any], channel: ChannelConfig, topic: str
    ) -> dict[str, Any]:
        order = payload["order"]
        items = list(payload.get("items") or [])
        currency = _single_currency(order, items, channel)
        amount = _Amounts(currency, channel.rounding)

        lines = []
        subtotal = discount_total = shipping = shipping_discount = Decimal(0)
        item_tax = shipping_tax = Decimal(0)
        gift_wrap = cod_fee = Decimal(0)
        for i, item in enumerate(items):
            where = f"/items/{i}"
            quantity = normalize.quantity(item, "QuantityOrdered", where, minimum=0)
            if quantity == 0:
                continue  # cancelled units: Amazon keeps the item with nothing ordered
            if not item.get("ItemPrice"):
                raise normalize.error(
                    f"{where}/ItemPrice",
                    "missing (Amazon withholds prices of some Pending orders); the order "
                    "can be normalized once Amazon reports its prices",
                )
            line_price = amount.money(item, "ItemPrice", where)
            unit_price = amount.quantize(line_price / quantity)
            if unit_price * quantity != line_price:
                raise normalize.error(
                    f"{where}/ItemPrice/Amount",
                    f"ItemPrice is the line total: {line_price} {currency} does not divide "
                    f"into {quantity} equal unit prices",
                    str(line_price),
                )
            discount = amount.money(item, "PromotionDiscount", where)
            tax = amount.money(item, "ItemTax", where)
            subtotal += line_price
            discount_total += discount
            item_tax += tax
            shipping += amount.money(item, "ShippingPrice", where)
            shipping_discount += amount.money(item, "ShippingDiscount", where)
            shipping_tax += amount.money(item, "ShippingTax", where)
            buyer_info = item.get("BuyerInfo") or {}
            gift_wrap += amount.money(buyer_info, "GiftWrapPrice", f"{where}/BuyerInfo")
            cod_fee += amount.money(item, "CODFee", where) - amount.money(
                item, "CODFeeDiscount", where
            )
            lines.append(
                {
                    "external_line_id": str(item.get("OrderItemId") or ""),
                    "channel_sku": str(item.get("SellerSKU") or ""),
                    "variant_ref": str(item.get("ASIN") or ""),
                    "sku": "",
                    "title": str(item.get("Title") or ""),
                    "quantity": quantity,
                    "unit_price": str(unit_price),
                    "discount": str(amount.quantize(discount)),
                    "tax": str(amount.quantize(tax)),
                }
            )
        if not lines:
            raise normalize.error("/items", "no item with a quantity ordered")

        marketplace = str(order.get("MarketplaceId") or "")
        # An order from a marketplace we cannot place is treated as tax-exclusive (the default
        # of the canonical order); the totals check flags it if that was wrong.
        taxes_included = bool(marketplace) and marketplace not in TAX_EXCLUSIVE_MARKETPLACES
        shipping_total = shipping - shipping_discount
        tax_total = item_tax + shipping_tax
        source: dict[str, Any] = {
            "order_status": order.get("OrderStatus", ""),
            "fulfillment_channel": order.get("FulfillmentChannel", ""),
            "sales_channel": order.get("SalesChannel", ""),
            "marketplace_id": marketplace,
        }
        # Amazon names no referrer: the marketplace is where the buyer came from.
        acquisition = normalize.acquisition_source(order.get("SalesChannel")) or (
            normalize.acquisition_source(marketplace)
        )
        if acquisition:
            source["acquisition_source"] = acquisition
        if order.get("OrderTotal"):
            total = amount.money(order, "OrderTotal", "/order")
            source["total_from"] = "OrderTotal"
        else:
            total = subtotal - discount_total + shipping_total
            if not taxes_included:
                total += tax_total
            source["total_from"] = "computed from the items: Amazon sent no OrderTotal"
        # Gift wrap and COD fees are in OrderTotal but have no canonical field: kept for people
        # (the totals check shows the difference).
        if gift_wrap:
            source["gift_wrap"] = str(amount.quantize(gift_wrap))
        if cod_fee:
            source["cod_fee"] = str(amount.quantize(cod_fee))

        status = str(order.get("OrderStatus") or "")
        placed_at = _parse_time(order.get("PurchaseDate"))
        if placed_at is None:
            raise normalize.error("/order/PurchaseDate", "missing or not a date-time")
        canonical: dict[str, Any] = {
            "schema_version": 1,
            "external_id": str(order["AmazonOrderId"]),
            "order_number": str(order["AmazonOrderId"]),
            "currency": currency,
            "placed_at": placed_at.isoformat(),
            "cancelled": status == "Canceled",
            "financial_status": FINANCIAL_STATUS.get(status, "unknown"),
            "payment_method": str(order.get("PaymentMethod") or ""),
            "customer": _customer(order.get("BuyerInfo")),
            # Amazon leaves ShippingAddress out (or trims it) unless the app holds a
            # Restricted Data Token for it; no address is then null, not an empty one.
            "shipping_address": _address(order.get("ShippingAddress")),
            "billing_address": None,
            "lines": lines,
            "subtotal": str(amount.quantize(subtotal)),
            "discount_total": str(amount.quantize(discount_total)),
            "shipping_total": str(amount.quantize(shipping_total)),
            "shipping_tax": str(amount.quantize(shipping_tax)),
            "tax_total": str(amount.quantize(tax_total)),
            "total": str(amount.quantize(total)),
            "taxes_included": taxes_included,
            "source": source,
        }
        updated_at = _parse_time(order.get("LastUpdateDate"))
        if updated_at is not None:
            canonical["updated_at"] = updated_at.isoformat()
        return canonical


# --- refund events (Finances API) ---------------------------------------------------------
def _decimals_as_strings(value: Any) -> Any:
    """Amazon's amounts kept exactly as it wrote them, as decimal strings (never a float)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _decimals_as_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals_as_strings(v) for v in value]
    return value


def refund_event_id(kind: str, event: Mapping[str, Any]) -> str:
    """A refund event's stable id (Amazon gives none): its kind, order, PostedDate and the
    adjustment item ids, hashed where they would not fit."""
    items = [item.get("OrderAdjustmentItemId") or item.get("OrderItemId") or ""
             for item in event.get("ShipmentItemAdjustmentList") or []]  # fmt: skip
    ids = ",".join(sorted(str(i) for i in items))
    head = f"{kind}:{event.get('AmazonOrderId')}:{event.get('PostedDate')}:"
    if len(head) + len(ids) > EXTERNAL_ID_CHARS:
        ids = hashlib.sha256(ids.encode()).hexdigest()[:16]
    return f"{head}{ids}"[:EXTERNAL_ID_CHARS]


def _money_list(
    entries: Any, name_key: str, amount_key: str, where: str, amount: Amounts
) -> list[tuple[str, Decimal]]:
    """``[(ChargeType/FeeType/PromotionType, amount)]`` of one adjustment list, signed as Amazon
    states it (from the seller's side)."""
    found = []
    for i, entry in enumerate(entries or []):
        money = entry.get(amount_key) or {}
        found.append((str(entry.get(name_key) or ""),
                      amount.parse(money.get("CurrencyAmount"),
                                   f"{where}/{i}/{amount_key}/CurrencyAmount")))  # fmt: skip
    return found


def _event_currency(event: Mapping[str, Any], channel: ChannelConfig) -> str:
    codes = {str(code).upper() for _p, code in _currency_codes(dict(event), "/event")}
    if len(codes) > 1:
        raise normalize.error("/event", "amounts in more than one currency", sorted(codes))
    return normalize.currency(codes.pop() if codes else channel.default_currency,
                              "/event/CurrencyCode")  # fmt: skip


def refund_event_canonical(
    kind: str, event: Mapping[str, Any], channel: ChannelConfig
) -> dict[str, Any]:
    """One Finances refund event (RefundEventList, ChargebackEventList, GuaranteeClaimEventList
    entry) as a canonical refund.

    The buyer's refund is the charge adjustments (Principal, Tax, ShippingCharge, ShippingTax,
    GiftWrap, RestockingFee...) and promotion adjustments of each adjusted item, plus the
    order-level charge adjustments. Amazon states them from the seller's side, so a refund is
    negative: the figures are turned around so the refund is positive. The sandbox's figures
    are all positive placeholders; the orientation is read from the event's sum, kept in raw
    (``seller_sign``). Marketplace-facilitator tax (Amazon's remittance) and every fee
    adjustment (commission given back to the seller...) are the seller's, kept in raw only.

    An item with a quantity is a line (by OrderItemId, the id normalize() gives each line; by
    SellerSKU when Amazon names no item id); one without (Amazon's sandbox says 0) is refunded
    by amount only, in ``adjustment``. Amazon says nothing about restocking: no restock type."""
    currency = _event_currency(event, channel)
    amount = Amounts(currency, channel.rounding)
    items: list[dict[str, Any]] = []
    facilitator = fees = seller_sum = amount.zero()
    for i, item in enumerate(event.get("ShipmentItemAdjustmentList") or []):
        where = f"/event/ShipmentItemAdjustmentList/{i}"
        goods = tax = shipping = shipping_tax = amount.zero()
        for name, value in _money_list(item.get("ItemChargeAdjustmentList"), "ChargeType",
                                       "ChargeAmount", f"{where}/ItemChargeAdjustmentList",
                                       amount):  # fmt: skip
            if name.startswith(FACILITATOR_PREFIX):
                facilitator += value
            elif name == "ShippingCharge":
                shipping += value
            elif name == "ShippingTax":
                shipping_tax += value
            elif "Tax" in name:
                tax += value
            else:
                goods += value
        for _name, value in _money_list(item.get("PromotionAdjustmentList"), "PromotionType",
                                        "PromotionAmount", f"{where}/PromotionAdjustmentList",
                                        amount):  # fmt: skip
            goods += value
        for _name, value in _money_list(item.get("ItemFeeAdjustmentList"), "FeeType",
                                        "FeeAmount", f"{where}/ItemFeeAdjustmentList",
                                        amount):  # fmt: skip
            fees += value
        seller_sum += goods + tax + shipping + shipping_tax
        items.append({"item": item, "goods": goods, "tax": tax, "shipping": shipping,
                      "shipping_tax": shipping_tax})  # fmt: skip
    order_charges = amount.zero()
    for _name, value in _money_list(event.get("OrderChargeAdjustmentList"), "ChargeType",
                                    "ChargeAmount", "/event/OrderChargeAdjustmentList",
                                    amount):  # fmt: skip
        if _name.startswith(FACILITATOR_PREFIX):
            facilitator += value
        else:
            order_charges += value
    for key in ("ShipmentFeeAdjustmentList", "OrderFeeAdjustmentList"):
        for _name, value in _money_list(event.get(key), "FeeType", "FeeAmount",
                                        f"/event/{key}", amount):  # fmt: skip
            fees += value
    seller_sum += order_charges
    sign = Decimal(1) if seller_sum > 0 else Decimal(-1)
    lines: list[dict[str, Any]] = []
    shipping_total = shipping_tax_total = amount.zero()
    adjustment = sign * order_charges
    for i, entry in enumerate(items):
        item = entry["item"]
        goods, tax = sign * entry["goods"], sign * entry["tax"]
        shipping_total += sign * entry["shipping"]
        shipping_tax_total += sign * entry["shipping_tax"]
        at = f"/event/ShipmentItemAdjustmentList/{i}"
        quantity = normalize.quantity(item, "QuantityShipped", at, minimum=0)
        if quantity == 0 or goods < 0 or tax < 0:
            adjustment += goods + tax  # by amount only: no unit to name
            continue
        line: dict[str, Any] = {
            "external_line_id": str(item.get("OrderItemId") or ""),
            "quantity": quantity, "amount": str(goods), "tax": str(tax),
        }  # fmt: skip
        if item.get("SellerSKU"):
            line["channel_sku"] = str(item["SellerSKU"])
        lines.append(line)
    total = sign * seller_sum
    posted = _parse_time(event.get("PostedDate"))
    canonical: dict[str, Any] = {
        "external_id": refund_event_id(kind, event),
        "currency": currency,
        "total": str(total),
        "shipping": str(max(shipping_total, amount.zero())),
        "shipping_tax": str(max(shipping_tax_total, amount.zero())),
        "adjustment": str(adjustment + min(shipping_total, amount.zero())
                          + min(shipping_tax_total, amount.zero())),
        "lines": lines,
        "reason": kind,
        "raw": {
            "kind": kind, "seller_sign": "+" if sign > 0 else "-",
            "seller_total": str(seller_sum), "fees": str(fees),
            "marketplace_facilitator_tax": str(facilitator),
            "items": [{"seller_sku": str(e["item"].get("SellerSKU") or ""),
                       "order_item_id": str(e["item"].get("OrderItemId") or ""),
                       "order_adjustment_item_id": str(e["item"].get("OrderAdjustmentItemId")
                                                       or ""),
                       "quantity": e["item"].get("QuantityShipped")} for e in items],
        },
    }  # fmt: skip
    if posted is not None:
        canonical["created_at"] = posted.isoformat()
    return canonical


# --- helpers -----------------------------------------------------------------------------
def _iso_z(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _currency_codes(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every ``CurrencyCode`` in a nested structure, with its JSON pointer."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "CurrencyCode":
                yield f"{path}/{key}", child
            else:
                yield from _currency_codes(child, f"{path}/{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _currency_codes(child, f"{path}/{i}")


def _single_currency(
    order: Mapping[str, Any], items: list[dict[str, Any]], channel: ChannelConfig
) -> str:
    """The order's currency; refuse an order whose amounts name more than one."""
    found = [
        *_currency_codes(dict(order), "/order"),
        *_currency_codes(items, "/items"),
    ]
    # OrderTotal decides; Pending orders have none, then the first item's price does.
    expected = (order.get("OrderTotal") or {}).get("CurrencyCode")
    if not expected:
        expected = next(
            (
                i["ItemPrice"].get("CurrencyCode")
                for i in items
                if isinstance(i.get("ItemPrice"), dict)
            ),
            None,
        )
    if not expected:
        expected = found[0][1] if found else channel.default_currency
    currency = normalize.currency(expected, "/order/OrderTotal/CurrencyCode")
    # The one raw value left: a currency code is not personal data, and the shared redaction
    # (normalize.error_entry) would hide it under BuyerInfo/GiftWrapPrice, where the person
    # fixing the order must see it (tests/channels/adapters/test_amazon.py asserts "GBP").
    mixed = [
        {
            "pointer": pointer,
            "message": f"{code} in a {currency} order: amounts in more than one currency "
            "cannot be added up, so the order is not normalized",
            "value": code,
        }
        for pointer, code in found
        if str(code).upper() != currency
    ]
    if mixed:
        raise NormalizationError(mixed)
    return currency


class _Amounts(Amounts):
    """Amazon ``Money`` objects (``{"CurrencyCode", "Amount": "<decimal string>"}``) as
    Decimals quantized to the order's currency with the channel's rounding."""

    def money(self, data: Mapping[str, Any], key: str, where: str) -> Decimal:
        """The amount of ``data[key]``; 0 when Amazon leaves it out."""
        value = data.get(key)
        if not value:
            return Decimal(0)
        raw = value.get("Amount") if isinstance(value, dict) else None
        return self.parse(raw, f"{where}/{key}/Amount")


def _address(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not data:
        return None
    country = str(data.get("CountryCode") or "").upper()
    if len(country) != 2:
        return None
    line2 = " ".join(str(data[k]) for k in ("AddressLine2", "AddressLine3") if data.get(k))
    fields = {
        "name": data.get("Name"),
        "company": data.get("CompanyName"),
        "line1": data.get("AddressLine1"),
        "line2": line2,
        "city": data.get("City"),
        "region": data.get("StateOrRegion"),
        "postal_code": data.get("PostalCode"),
        "phone": data.get("Phone"),
    }
    address = {key: str(value) for key, value in fields.items() if value}
    address["country_code"] = country
    return address


def _customer(buyer: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not buyer:
        return None
    customer: dict[str, Any] = {
        key: str(buyer[field])
        for key, field in (("email", "BuyerEmail"), ("name", "BuyerName"))
        if buyer.get(field)
    }
    if customer:
        # Amazon's buyer is Amazon's customer: its masked address is for order mail only.
        customer["accepts_marketing"] = False
    return customer or None


adapter = AmazonChannelAdapter()
