"""Shopify: ``orders/*`` webhooks that carry the whole order, signed with the app's secret.

The mandatory compliance topics (``customers/data_request``, ``customers/redact``,
``shop/redact``) carry no order: ``privacy_request`` reads them into a ``PrivacyRequest`` that
``channels.privacy`` acts on (docs/privacy.md).

The webhook body is the bare REST order object (no ``{"order": ...}`` wrapper), validated
against ``shopify_order.v1.json`` and normalized here; nothing is fetched. ``orders/cancelled``
is a full order with ``cancelled_at`` set, so it needs no special path either.

Shopify signs the body only: the topic and event-id headers can be swapped on a captured
delivery. So the two destructive topics must carry a body of their own shape
(``orders/delete``: ``{"id": ...}`` only; ``orders/cancelled``: ``cancelled_at`` set), and
where the channel has an API configured the order is looked up before anything is cancelled
(``confirm_cancel``: ``GET /admin/api/<version>/orders/<id>.json``).

Amounts are the shop-currency fields (``total_price``, ``price``, ...: decimal strings), not the
``*_set.presentment_money`` ones; the order's ``currency`` is the shop currency they are in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from channels import signatures
from channels.adapters import normalize
from channels.adapters.base import AdapterError, ChannelConfig, Delivery, PrivacyRequest
from channels.adapters.normalize import Amounts, Keys
from channels.http import session_for
from orders.fingerprints import client_ip_hash, fingerprint

SIGNATURE_HEADER = "x-shopify-hmac-sha256"
DELETED_TOPIC = "orders/delete"
CANCELLED_TOPIC = "orders/cancelled"
REFUND_TOPIC = "refunds/create"  # the bare refund object, no order
# Shopify's refund line restock_type -> canonical (the channel's word is kept beside it).
RESTOCK_TYPES = {"return": "return", "cancel": "cancel", "no_restock": "no_restock",
                 "legacy_restock": "return"}  # fmt: skip
# The topics that cancel an order, and the body each must have (for the quarantine error).
DESTRUCTIVE_TOPICS = MappingProxyType({
    DELETED_TOPIC: 'an orders/delete body must be {"id": ...} only (Shopify sends nothing '
    "else for a deleted order); a body with other fields is a replayed delivery under a "
    "swapped topic, and nothing was cancelled",
    CANCELLED_TOPIC: "an orders/cancelled body must be the order with cancelled_at set; an "
    "order that is not cancelled is a replayed delivery under a swapped topic, and nothing "
    "was cancelled",
})  # fmt: skip

# Shopify financial_status -> canonical. The canonical order has no "partially paid": part of
# the money is in, the rest is promised by nothing, so the order stays "pending" (calling it
# "authorized" would claim the whole amount is held, and "paid" would let it ship). An expired
# authorization holds no money any more, like a voided one. Anything else is "unknown".
FINANCIAL_STATUS = {
    "pending": "pending",
    "authorized": "authorized",
    "partially_paid": "pending",
    "paid": "paid",
    "partially_refunded": "partially_refunded",
    "refunded": "refunded",
    "voided": "voided",
    "expired": "voided",
}
# Refund transactions that did not move money back (a failed or still pending refund).
NOT_REFUNDED = frozenset({"failure", "error", "pending"})
# Mandatory compliance topics -> (their body's schema, the request kind).
PRIVACY_TOPICS = {
    "customers/data_request": ("shopify_customers_data_request.v1.json", "data_request"),
    "customers/redact": ("shopify_customers_redact.v1.json", "customer_redact"),
    "shop/redact": ("shopify_shop_redact.v1.json", "shop_redact"),
}


class ShopifyChannelAdapter:
    kind = "shopify"

    # --- receiving -----------------------------------------------------------------------
    def verify(
        self, channel: ChannelConfig, headers: Mapping[str, str], body: bytes, *, now: datetime
    ) -> Delivery:
        """``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(app secret, raw body)); headers come
        with lower-case names. Nothing in the body is read."""
        signatures.base64_hmac_body(
            secret=channel.secret, header_value=headers.get(SIGNATURE_HEADER), body=body
        )
        return Delivery(
            dedup_key=_dedup_key(headers, body),
            topic=headers.get("x-shopify-topic", ""),
            api_version=headers.get("x-shopify-api-version", ""),
            event_at=_header_time(headers.get("x-shopify-triggered-at")),
        )

    def payload_schema(self, topic: str, api_version: str) -> str:
        # orders/create, orders/updated, orders/cancelled (and orders/paid, orders/fulfilled...)
        # all carry the full order; orders/delete carries only {"id": ...}.
        if topic == DELETED_TOPIC:
            return "shopify_order_deleted.v1.json"
        if topic in PRIVACY_TOPICS:
            return PRIVACY_TOPICS[topic][0]
        if topic == REFUND_TOPIC:
            return "shopify_refund.v1.json"
        if topic == CANCELLED_TOPIC:
            return "shopify_order_cancelled.v1.json"  # the order schema and cancelled_at set
        return "shopify_order.v1.json"

    def fetch(self, channel: ChannelConfig, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        return None  # the webhook carries the whole order

    def cancelled_external_id(self, payload: Mapping[str, Any], topic: str) -> str | None:
        # orders/cancelled is a full order (cancelled_at set): normalize() says "cancelled".
        # A deleted order is gone from the store: we cancel ours if it has not shipped.
        if topic == DELETED_TOPIC:
            return str(payload["id"])
        return None

    def read_refund(
        self, channel: ChannelConfig, payload: Mapping[str, Any], topic: str
    ) -> tuple[str, dict[str, Any]] | None:
        """(order id, canonical refund) of a ``refunds/create`` body; None for other topics.
        The refund carries no currency: the amounts are read with the channel's default
        currency's places (the order's own currency decides when it is recorded)."""
        if topic != REFUND_TOPIC:
            return None
        currency = str(channel.default_currency or "USD")
        refund = refund_canonical(payload, Amounts(currency, channel.rounding), [])
        refund["order_external_id"] = str(payload["order_id"])
        return str(payload["order_id"]), refund

    def privacy_request(self, payload: Mapping[str, Any], topic: str) -> PrivacyRequest | None:
        """A compliance topic's request (its body already passed its schema); else None."""
        if topic not in PRIVACY_TOPICS:
            return None
        kind = PRIVACY_TOPICS[topic][1]
        raw = payload.get("customer")
        customer: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        orders = payload.get("orders_to_redact") or payload.get("orders_requested") or []
        request = payload.get("data_request")
        ref = (request or {}).get("id") if isinstance(request, Mapping) else None
        return PrivacyRequest(
            kind=kind,
            shop_domain=str(payload.get("shop_domain") or ""),
            request_ref=str(ref) if ref is not None else "",
            customer_ref="" if customer.get("id") is None else str(customer["id"]),
            email=str(customer.get("email") or "").strip().lower(),
            phone=str(customer.get("phone") or ""),
            order_ids=tuple(str(i) for i in orders),
        )

    destructive_topics = DESTRUCTIVE_TOPICS

    def confirm_cancel(
        self, channel: ChannelConfig, payload: Mapping[str, Any], topic: str
    ) -> bool | None:
        """``GET {api_base_url}/admin/api/{api_version}/orders/{id}.json`` with the app's
        ``access_token``: a deleted order answers 404, a cancelled one has ``cancelled_at``.
        None when the channel has no API base URL (nothing to ask)."""
        if not channel.api_base_url:
            return None
        if not admin_api_ready(channel):
            raise AdapterError(
                f"Shopify channel {channel.id} has an api_base_url but no api_version or no "
                "access_token in its credentials: the cancellation cannot be confirmed",
                retryable=False,
            )
        order_id = int(payload["id"])
        url = admin_url(channel, f"orders/{order_id}.json")
        headers = admin_headers(channel)
        with session_for(channel) as session:
            response = session.call(
                "GET", url, what="Shopify get order", accept={404}, headers=headers
            )
            if response.status_code == 404:
                response.close()
                return True  # deleted in the shop
            answer = session.json_of(response, what="Shopify get order")
        order = answer.get("order") if isinstance(answer, dict) else None
        if not isinstance(order, dict):
            raise AdapterError(
                f"Shopify get order {order_id}: the answer has no order object", retryable=False
            )
        return order.get("cancelled_at") not in (None, "")

    # --- normalizing ---------------------------------------------------------------------
    def normalize(
        self, payload: Mapping[str, Any], channel: ChannelConfig, topic: str
    ) -> dict[str, Any]:
        """The canonical order. Order totals are Shopify's own figures, never recomputed: the
        totals check compares them with the lines and flags what does not add up."""
        order = payload
        currency = normalize.currency(order.get("currency"), ["currency"])
        amount = Amounts(currency, channel.rounding)
        line_items = order.get("line_items")
        if not isinstance(line_items, list) or not line_items:
            raise normalize.error(["line_items"], "the order has no line items", line_items)

        shipping_lines = normalize.list_of(order, "shipping_lines")
        shipping_tax = amount.zero()
        for i, shipping in enumerate(shipping_lines):
            for j, tax in enumerate(normalize.list_of(shipping, "tax_lines")):
                shipping_tax += amount.required(tax, "price", ["shipping_lines", i, "tax_lines", j])

        canonical: dict[str, Any] = {
            "schema_version": 1,
            "external_id": normalize.external_id(order.get("id"), ["id"]),
            "order_number": str(order.get("name") or order.get("order_number") or ""),
            "currency": currency,
            "placed_at": _timestamp(order.get("created_at"), ["created_at"]),
            "cancelled": order.get("cancelled_at") is not None,
            "financial_status": FINANCIAL_STATUS.get(
                str(order.get("financial_status") or ""), "unknown"
            ),
            "payment_method": "+".join(_gateways(order)),
            "customer": _customer(order),
            "shipping_address": _address(order.get("shipping_address"), ["shipping_address"]),
            "billing_address": _address(order.get("billing_address"), ["billing_address"]),
            "lines": [_line(item, i, amount) for i, item in enumerate(line_items)],
            "subtotal": str(amount.required(order, "total_line_items_price", [])),
            "discount_total": str(amount.required(order, "total_discounts", [])),
            "shipping_total": str(_shipping_total(order, shipping_lines, amount)),
            "shipping_tax": str(shipping_tax),
            "tax_total": str(amount.required(order, "total_tax", [])),
            "total": str(amount.required(order, "total_price", [])),
            "tax_lines": _tax_lines(normalize.list_of(order, "tax_lines"), ["tax_lines"], amount),
            "taxes_included": order.get("taxes_included") is True,
            "refunded_total": str(_refunded(order, amount)),
            "refunds": [
                refund_canonical(refund, amount, ["refunds", i])
                for i, refund in enumerate(normalize.list_of(order, "refunds"))
            ],
            "risk_signals": {},
            "source": _source(order, shipping_lines, amount),
        }
        if order.get("updated_at"):
            canonical["updated_at"] = _timestamp(order["updated_at"], ["updated_at"])
        return canonical


# --- the Admin REST API (confirm_cancel here, the tracking write-back in channels.writeback) ---
def admin_api_ready(channel: ChannelConfig) -> bool:
    """Whether the channel has what an Admin API call needs: base URL, version, access token."""
    return bool(
        channel.api_base_url and channel.api_version and channel.credentials.get("access_token")
    )


def admin_url(channel: ChannelConfig, path: str) -> str:
    """``{api_base_url}/admin/api/{api_version}/{path}`` (``path`` like ``orders/1.json``)."""
    base = channel.api_base_url.rstrip("/")
    return f"{base}/admin/api/{channel.api_version}/{path.lstrip('/')}"


def admin_headers(channel: ChannelConfig) -> dict[str, str]:
    """The app's ``X-Shopify-Access-Token`` and JSON."""
    token = str(channel.credentials.get("access_token") or "")
    return {"X-Shopify-Access-Token": token, "Accept": "application/json"}


# --- verify helpers ------------------------------------------------------------------------
def _dedup_key(headers: Mapping[str, str], body: bytes) -> str:
    """X-Shopify-Event-Id is the same for every delivery of one event (also across several
    subscriptions to a topic, so the order is processed once); X-Shopify-Webhook-Id is the
    per-delivery id the newer docs call the idempotency key. A delivery with neither cannot
    be refused through this interface (a 401 would be a lie about its signature), so its
    bytes key it: Shopify retries carry the original payload, so a retry still matches."""
    if headers.get("x-shopify-event-id"):
        return f"event:{headers['x-shopify-event-id']}"
    if headers.get("x-shopify-webhook-id"):
        return f"webhook:{headers['x-shopify-webhook-id']}"
    from channels.services import body_dedup_key  # services imports the adapters

    return body_dedup_key(body)


def _header_time(value: str | None) -> datetime | None:
    """X-Shopify-Triggered-At (ISO 8601, often with nanoseconds and a Z); None if unusable."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


# --- normalize helpers ---------------------------------------------------------------------
def _timestamp(value: Any, path: Keys) -> str:
    """An ISO 8601 time with its offset, as Shopify gives it."""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise normalize.error(path, "not an ISO 8601 time", value) from None
    if when.tzinfo is None:
        raise normalize.error(path, "time without a UTC offset", value)
    return when.isoformat()


def _rate(value: Any) -> str | None:
    """A tax rate as a string. Shopify sends it as a JSON number (``0.06``); it is a rate, not
    money, and repr() gives back the shortest literal of the float, i.e. the one that was in
    the JSON (written out without an exponent)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value)


def _tax_lines(taxes: list[Any], where: Keys, amount: Amounts) -> list[dict[str, Any]]:
    return [
        {
            "title": str(tax.get("title") or ""),
            "rate": _rate(tax.get("rate")),
            "amount": str(amount.required(tax, "price", [*where, j])),
        }
        for j, tax in enumerate(taxes)
    ]


def _line(item: Mapping[str, Any], index: int, amount: Amounts) -> dict[str, Any]:
    where: list[str | int] = ["line_items", index]
    quantity = normalize.quantity(item, "quantity", where)
    if item.get("id") is None:
        raise normalize.error([*where, "id"], "missing line id")
    # price is the unit price before discounts; discount_allocations are the parts of every
    # discount application (code, automatic, manual) that fell on this line, in total.
    discount = amount.zero()
    for j, allocation in enumerate(normalize.list_of(item, "discount_allocations")):
        discount += amount.required(allocation, "amount", [*where, "discount_allocations", j])
    tax_lines = _tax_lines(normalize.list_of(item, "tax_lines"), [*where, "tax_lines"], amount)
    tax = sum((Decimal(t["amount"]) for t in tax_lines), amount.zero())
    variant_id = item.get("variant_id")
    return {
        "external_line_id": str(item["id"]),
        "channel_sku": str(item.get("sku") or ""),
        "variant_ref": "" if variant_id is None else str(variant_id),
        "sku": "",
        "title": str(item.get("name") or item.get("title") or ""),
        "quantity": quantity,
        "unit_price": str(amount.required(item, "price", where)),
        "discount": str(discount),
        "tax": str(tax),
        "tax_lines": tax_lines,
    }


def _shipping_total(
    order: Mapping[str, Any], shipping_lines: list[Any], amount: Amounts
) -> Decimal:
    """Shopify's stated shipping total (before shipping discounts); the sum of the shipping
    lines' prices when an older payload has no ``total_shipping_price_set``."""
    stated = ((order.get("total_shipping_price_set") or {}).get("shop_money") or {}).get("amount")
    if stated not in (None, ""):
        return amount.parse(stated, ["total_shipping_price_set", "shop_money", "amount"])
    total = amount.zero()
    for i, shipping in enumerate(shipping_lines):
        total += amount.required(shipping, "price", ["shipping_lines", i])
    return total


def _refunded(order: Mapping[str, Any], amount: Amounts) -> Decimal:
    """Money that went back: every refund transaction (kind ``refund``) that did not fail.
    One refund may be split across gateways (10.00 to a card, 100.00 to a gift card)."""
    total = amount.zero()
    for i, refund in enumerate(normalize.list_of(order, "refunds")):
        for j, tx in enumerate(normalize.list_of(refund, "transactions")):
            if tx.get("kind") == "refund" and tx.get("status") not in NOT_REFUNDED:
                total += amount.required(tx, "amount", ["refunds", i, "transactions", j])
    return total


def _shop(data: Any, key: str) -> Any:
    """``data[key].shop_money.amount`` (None when absent)."""
    block = data.get(key) if isinstance(data, Mapping) else None
    money = block.get("shop_money") if isinstance(block, Mapping) else None
    return money.get("amount") if isinstance(money, Mapping) else None


def _money(data: Any, key: str, amount: Amounts, path: Keys) -> Decimal:
    value = _shop(data, key)
    return amount.zero() if value in (None, "") else amount.parse(value, [*path, key])


def refund_canonical(refund: Mapping[str, Any], amount: Amounts, where: Keys) -> dict[str, Any]:
    """One Shopify refund as a canonical refund (canonical_refund.v1.json).

    ``total`` is the money that moved: its successful refund transactions. Shopify's
    ``order_adjustments`` of kind ``refund_discrepancy`` are the part of the refunded lines,
    shipping and fees that was NOT paid back, stated as a positive amount (the cancelled-order
    sample: lines 195.66 + tax 3.98 = 199.64, discrepancy 89.64, transactions 110.00). Our
    ``adjustment`` is what is added to the parts to reach the money moved, so it is the negated
    sum of the adjustments (-89.64); 199.64 - 89.64 = 110.00."""
    path = list(where)
    lines = []
    for j, item in enumerate(normalize.list_of(refund, "refund_line_items")):
        at = [*path, "refund_line_items", j]
        word = str(item.get("restock_type") or "no_restock")
        line: dict[str, Any] = {
            "external_line_id": str(item.get("line_item_id")),
            "quantity": normalize.quantity(item, "quantity", at),
            "amount": str(_money(item, "subtotal_set", amount, at)),
            "tax": str(_money(item, "total_tax_set", amount, at)),
            "restock_type": RESTOCK_TYPES.get(word, "no_restock"),
            "channel_restock_type": word,
        }
        if item.get("location_id") is not None:
            line["location_ref"] = str(item["location_id"])
        lines.append(line)
    payments = []
    for j, tx in enumerate(normalize.list_of(refund, "transactions")):
        if tx.get("kind") != "refund" or tx.get("status") in NOT_REFUNDED:
            continue
        payments.append({
            "method": str(tx.get("gateway") or "unknown"),
            "amount": str(amount.required(tx, "amount", [*path, "transactions", j])),
            "external_id": str(tx.get("id", "")),
        })  # fmt: skip
    total = sum((Decimal(p["amount"]) for p in payments), amount.zero())
    shipping = shipping_tax = amount.zero()
    for j, ship in enumerate(normalize.list_of(refund, "refund_shipping_lines")):
        at = [*path, "refund_shipping_lines", j]
        shipping += _money(ship, "subtotal_amount_set", amount, at)
        shipping_tax += _money(ship, "total_tax_amount_set", amount, at)
    fees = _money(refund, "total_duties_set", amount, path) + _money(
        refund, "total_additional_fees_set", amount, path
    )
    adjustment = amount.zero()
    for j, adj in enumerate(normalize.list_of(refund, "order_adjustments")):
        adjustment -= amount.required(adj, "amount", [*path, "order_adjustments", j])
    canonical: dict[str, Any] = {
        "external_id": normalize.external_id(refund.get("id"), [*path, "id"]),
        "currency": amount.currency,
        "total": str(total),
        "shipping": str(shipping),
        "shipping_tax": str(shipping_tax),
        "fees": str(fees),
        "adjustment": str(adjustment),
        "lines": lines,
        "payments": payments,
        "note": str(refund.get("note") or "")[:500],
        # Kept as Shopify sent it (its sign); every other figure is above as it is.
        "raw": {"order_adjustments": str(-adjustment)},
    }  # fmt: skip
    when = refund.get("processed_at") or refund.get("created_at")
    if when:
        canonical["created_at"] = _timestamp(when, [*path, "processed_at"])
    return canonical


def _gateways(order: Mapping[str, Any]) -> list[str]:
    return [str(name) for name in normalize.list_of(order, "payment_gateway_names") if name]


def _address(data: Any, path: Keys) -> dict[str, Any] | None:
    """A postal address, or None when there is none (an order without shipping). Only the
    fields we use are kept (not latitude/longitude); empty strings are dropped. An address with
    street, city or postcode but no usable country is an error, not something to drop."""
    if not isinstance(data, Mapping):
        return None
    name = data.get("name") or " ".join(
        str(data[k]) for k in ("first_name", "last_name") if data.get(k)
    )
    fields = {
        "name": name,
        "company": data.get("company"),
        "line1": data.get("address1"),
        "line2": data.get("address2"),
        "city": data.get("city"),
        "region": data.get("province"),
        "region_code": data.get("province_code"),
        "postal_code": data.get("zip"),
        "phone": data.get("phone"),
    }
    return normalize.address(fields, data.get("country_code"), [*path, "country_code"])


def _customer(order: Mapping[str, Any]) -> dict[str, Any] | None:
    """Who bought: the order's own contact details first (they are the ones given for this
    order), the customer record's as a fallback. None for an order without any."""
    raw = order.get("customer")
    record: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    customer: dict[str, Any] = {}
    if record.get("id") is not None:
        customer["external_id"] = str(record["id"])
    email = order.get("email") or order.get("contact_email") or record.get("email")
    if email:
        customer["email"] = str(email)
    name = " ".join(str(record[k]) for k in ("first_name", "last_name") if record.get(k))
    billing = order.get("billing_address")
    if not name and isinstance(billing, Mapping):
        name = str(billing.get("name") or "")
    if name:
        customer["name"] = name
    phone = order.get("phone") or record.get("phone")
    if phone:
        customer["phone"] = str(phone)
    if customer:
        customer["accepts_marketing"] = accepts_marketing(order)
    return customer or None


def accepts_marketing(order: Mapping[str, Any]) -> bool:
    """The customer record's current email consent (``email_marketing_consent.state``) when the
    order carries it (a later withdrawal shows there), else the checkout's
    ``buyer_accepts_marketing``. Unknown is no."""
    record = order.get("customer")
    consent = record.get("email_marketing_consent") if isinstance(record, Mapping) else None
    if isinstance(consent, Mapping) and consent.get("state"):
        return str(consent["state"]).lower() == "subscribed"
    return order.get("buyer_accepts_marketing") is True


def _source(order: Mapping[str, Any], shipping_lines: list[Any], amount: Amounts) -> dict[str, Any]:
    """Facts for people, never personal data."""
    source: dict[str, Any] = {
        "financial_status": order.get("financial_status"),
        "fulfillment_status": order.get("fulfillment_status"),
        "cancel_reason": order.get("cancel_reason"),
        "payment_gateway_names": _gateways(order),
        "source_name": order.get("source_name"),
        "test": order.get("test") is True,
        "discount_codes": [
            str(code.get("code"))
            for code in normalize.list_of(order, "discount_codes")
            if code.get("code")
        ],
    }
    raw_client = order.get("client_details")
    client: Mapping[str, Any] = raw_client if isinstance(raw_client, Mapping) else {}
    ip_hash = client_ip_hash(order.get("browser_ip") or client.get("browser_ip"))
    if ip_hash:
        source["browser_ip_hash"] = ip_hash
    # Card checks of the (older) payment_details block: result codes only, never the card.
    raw_details = order.get("payment_details")
    details: Mapping[str, Any] = raw_details if isinstance(raw_details, Mapping) else {}
    for key in ("avs_result_code", "cvv_result_code"):
        if details.get(key):
            source[key] = str(details[key])
    if details.get("credit_card_bin") and details.get("credit_card_number"):
        card = f"{details['credit_card_bin']}:{str(details['credit_card_number'])[-4:]}"
        source["card_fingerprint"] = fingerprint("card", card)
    if order.get("presentment_currency") and order["presentment_currency"] != order.get("currency"):
        source["presentment_currency"] = order["presentment_currency"]
    # Amounts the canonical order has no field for; when they are not zero the totals will not
    # add up, and this is where a person sees why.
    shipping_discount = amount.zero()
    for i, shipping in enumerate(shipping_lines):
        for j, allocation in enumerate(normalize.list_of(shipping, "discount_allocations")):
            shipping_discount += amount.required(
                allocation, "amount", ["shipping_lines", i, "discount_allocations", j]
            )
    if shipping_discount:
        source["shipping_discount"] = str(shipping_discount)
    tips = order.get("total_tip_received")
    if tips not in (None, "") and amount.parse(tips, ["total_tip_received"]):
        source["total_tip_received"] = str(amount.parse(tips, ["total_tip_received"]))
    acquisition = _acquisition(order)
    if acquisition:
        source["acquisition_source"] = acquisition
    return source


def _acquisition(order: Mapping[str, Any]) -> str:
    """Where the buyer came from: the landing page's ``utm_source``, else the referring site's
    host (only the host: a referrer's path or query may carry a search or an email)."""
    utm = normalize.acquisition_source(normalize.url_param(order.get("landing_site"), "utm_source"))
    return utm or normalize.acquisition_source(normalize.url_host(order.get("referring_site")))


adapter = ShopifyChannelAdapter()
