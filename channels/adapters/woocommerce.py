"""WooCommerce: ``order.*`` webhooks carrying the REST v3 order, signed with the webhook secret.

An ``order.created`` / ``order.updated`` / ``order.restored`` body is exactly the order as
``GET /wp-json/wc/v3/orders/<id>`` returns it (``woocommerce_order.v1.json``); nothing is
fetched. ``order.deleted`` (the order went to the trash) carries only ``{"id": ...}``
(``woocommerce_order_deleted.v1.json``) and cancels the order through
``cancelled_external_id``. WooCommerce signs the body only, so that topic header could be
swapped on a captured ``order.created`` delivery: an ``order.deleted`` body must be
``{"id": ...}`` only, and where the channel has an API configured the order is looked up
(``GET /wp-json/wc/v3/orders/<id>``: 404, or status ``trash``/``cancelled``) before it is
cancelled. When a webhook is activated WooCommerce posts an unsigned form body
``webhook_id=<id>``: that ping is answered 200 and nothing is stored.

Amounts in the REST order are always EXCLUSIVE of tax, whatever the store's
``prices_include_tax`` says: line ``subtotal``/``total``, ``discount_total`` and
``shipping_total`` are net, taxes are separate, and WooCommerce computes
``total = line totals + fees + shipping_total + cart_tax + shipping_tax``
(``WC_Abstract_Order::calculate_totals``). So ``taxes_included`` is always false here and
``prices_include_tax`` is kept in ``source``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from channels import signatures
from channels.adapters import normalize
from channels.adapters.base import AdapterError, ChannelConfig, Delivery
from channels.adapters.normalize import Amounts, Keys
from channels.http import session_for
from orders.fingerprints import client_ip_hash

SIGNATURE_HEADER = "x-wc-webhook-signature"
DELETED_TOPIC = "order.deleted"
DESTRUCTIVE_TOPICS = MappingProxyType({
    DELETED_TOPIC: 'an order.deleted body must be {"id": ...} only (WooCommerce sends nothing '
    "else for a deleted order); a body with other fields is a replayed delivery under a "
    "swapped topic, and nothing was cancelled",
})  # fmt: skip
# What GET /orders/<id> says of an order that a deletion may cancel.
GONE_STATUSES = frozenset({"trash", "cancelled"})
# WC_Webhook::deliver_ping() posts exactly 'webhook_id=' . $this->get_id(), unsigned.
PING_BODY = re.compile(rb"webhook_id=([0-9]{1,20})")
# A WooCommerce state is a code ("CA", "RJ") for countries with a state list, free text else.
STATE_CODE = re.compile(r"[A-Z0-9]{1,3}")

# WooCommerce order status -> canonical financial status. "processing" means the payment was
# received and the order awaits fulfilment, "completed" that it was fulfilled: both are paid.
# "on-hold" awaits a payment to be confirmed (a bank transfer, say) and "failed" is a payment
# that did not go through, which the customer may retry: neither holds money, so "pending".
# "cancelled" is voided (and ``cancelled`` is set). Partial refunds leave the status as it is
# (WooCommerce only moves a fully refunded order to "refunded"), so a paid order with refunds
# is reported as partially_refunded (see ``_financial_status``).
FINANCIAL_STATUS = {
    "pending": "pending",
    "checkout-draft": "pending",
    "on-hold": "pending",
    "failed": "pending",
    "processing": "paid",
    "completed": "paid",
    "cancelled": "voided",
    "refunded": "refunded",
}


class WooCommerceChannelAdapter:
    kind = "woocommerce"

    # --- receiving -----------------------------------------------------------------------
    def verify(
        self, channel: ChannelConfig, headers: Mapping[str, str], body: bytes, *, now: datetime
    ) -> Delivery:
        """``X-WC-Webhook-Signature`` = base64(HMAC-SHA256(secret, raw body)); headers come
        with lower-case names. The activation ping is the one unsigned body let through, and
        only when it is exactly ``webhook_id=<digits>`` (it is answered and never stored)."""
        ping = PING_BODY.fullmatch(body)
        if ping is not None:
            return Delivery(dedup_key=f"ping:{ping.group(1).decode()}", topic="ping", is_ping=True)
        signatures.base64_hmac_body(
            secret=channel.secret, header_value=headers.get(SIGNATURE_HEADER), body=body
        )
        return Delivery(
            dedup_key=_dedup_key(headers, body), topic=headers.get("x-wc-webhook-topic", "")
        )

    def payload_schema(self, topic: str, api_version: str) -> str:
        if topic == DELETED_TOPIC:
            return "woocommerce_order_deleted.v1.json"
        return "woocommerce_order.v1.json"

    def fetch(self, channel: ChannelConfig, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        return None  # the webhook carries the whole order

    def cancelled_external_id(self, payload: Mapping[str, Any], topic: str) -> str | None:
        if topic == DELETED_TOPIC:
            return str(payload["id"])
        return None

    destructive_topics = DESTRUCTIVE_TOPICS

    def confirm_cancel(
        self, channel: ChannelConfig, payload: Mapping[str, Any], topic: str
    ) -> bool | None:
        """``GET {api_base_url}/wp-json/wc/v3/orders/{id}`` with the REST API key (basic auth,
        ``consumer_key`` / ``consumer_secret``): a deleted order answers 404, a trashed or
        cancelled one says so in ``status``. None when the channel has no API base URL."""
        if not channel.api_base_url:
            return None
        key, secret = (
            channel.credentials.get("consumer_key"),
            channel.credentials.get("consumer_secret"),
        )
        if not key or not secret:
            raise AdapterError(
                f"WooCommerce channel {channel.id} has an api_base_url but no consumer_key and "
                "consumer_secret in its credentials: the deletion cannot be confirmed",
                retryable=False,
            )
        order_id = int(payload["id"])
        url = f"{channel.api_base_url}/wp-json/wc/v3/orders/{order_id}"
        with session_for(channel) as session:
            response = session.call(
                "GET", url, what="WooCommerce get order", accept={404},
                auth=(str(key), str(secret)), headers={"Accept": "application/json"},
            )  # fmt: skip
            if response.status_code == 404:
                response.close()
                return True  # deleted for good
            order = session.json_of(response, what="WooCommerce get order")
        if not isinstance(order, dict):
            raise AdapterError(
                f"WooCommerce get order {order_id}: the answer is not an order", retryable=False
            )
        return order.get("status") in GONE_STATUSES

    # --- normalizing ---------------------------------------------------------------------
    def normalize(
        self, payload: Mapping[str, Any], channel: ChannelConfig, topic: str
    ) -> dict[str, Any]:
        """The canonical order. Order totals are WooCommerce's own figures, never recomputed
        (the totals check compares them with the lines); the subtotal, which the REST order
        does not state, is the sum of the line subtotals."""
        order = payload
        currency = normalize.currency(order.get("currency"), ["currency"])
        amount = Amounts(currency, channel.rounding)
        line_items = order.get("line_items")
        if not isinstance(line_items, list) or not line_items:
            raise normalize.error(["line_items"], "the order has no line items", line_items)

        rates = _rates(order)
        lines, subtotal = [], amount.zero()
        for i, item in enumerate(line_items):
            line, line_subtotal = _line(item, i, amount, rates)
            lines.append(line)
            subtotal += line_subtotal
        refunded = _refunded(order, amount)
        status = str(order.get("status") or "")

        canonical: dict[str, Any] = {
            "schema_version": 1,
            "external_id": normalize.external_id(order.get("id"), ["id"]),
            "order_number": str(order.get("number") or order.get("id") or ""),
            "currency": currency,
            "placed_at": _gmt(order.get("date_created_gmt"), ["date_created_gmt"]),
            "cancelled": status == "cancelled",
            "financial_status": _financial_status(status, refunded),
            "payment_method": str(order.get("payment_method") or ""),
            "customer": _customer(order),
            "shipping_address": _address(order.get("shipping"), ["shipping"]),
            "billing_address": _address(order.get("billing"), ["billing"]),
            "lines": lines,
            "subtotal": str(subtotal),
            "discount_total": str(amount.required(order, "discount_total", [])),
            "shipping_total": str(amount.required(order, "shipping_total", [])),
            "shipping_tax": str(amount.optional(order, "shipping_tax", [])),
            "tax_total": str(amount.required(order, "total_tax", [])),
            "total": str(amount.required(order, "total", [])),
            "tax_lines": _order_tax_lines(order, amount),
            "taxes_included": False,  # REST amounts are net whatever prices_include_tax says
            "refunded_total": str(refunded),
            "refunds": _refunds(order, amount),
            "risk_signals": {},
            "source": _source(order, amount),
        }
        if order.get("date_modified_gmt"):
            canonical["updated_at"] = _gmt(order["date_modified_gmt"], ["date_modified_gmt"])
        return canonical


# --- verify helpers ------------------------------------------------------------------------
def _dedup_key(headers: Mapping[str, str], body: bytes) -> str:
    """X-WC-Webhook-Delivery-ID names one delivery. A delivery without it cannot be refused
    through this interface (a 401 would be a lie about its signature), so its bytes key it."""
    if headers.get("x-wc-webhook-delivery-id"):
        return f"delivery:{headers['x-wc-webhook-delivery-id']}"
    from channels.services import body_dedup_key  # services imports the adapters

    return body_dedup_key(body)


# --- normalize helpers ---------------------------------------------------------------------
def _gmt(value: Any, path: Keys) -> str:
    """``date_*_gmt`` is UTC written without an offset ("2017-03-22T19:28:02")."""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise normalize.error(path, "not an ISO 8601 time", value) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat()


def _financial_status(status: str, refunded: Decimal) -> str:
    mapped = FINANCIAL_STATUS.get(status, "unknown")
    if mapped == "paid" and refunded > 0:
        return "partially_refunded"
    return mapped


def _rates(order: Mapping[str, Any]) -> dict[Any, Mapping[str, Any]]:
    """The order's tax lines by rate id: line ``taxes`` name only the rate id."""
    return {
        tax.get("rate_id"): tax
        for tax in normalize.list_of(order, "tax_lines")
        if isinstance(tax, dict)
    }


def _rate_percent(tax: Mapping[str, Any] | None) -> str | None:
    """``rate_percent`` (WooCommerce 3.7+) as a string; the 3.0-era docs examples have none,
    and a rate is not made up from amounts."""
    value = (tax or {}).get("rate_percent")
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):  # a rate, not money: repr() is the literal that was sent
        return format(Decimal(repr(value)), "f")
    return str(value)


def _line(
    item: Mapping[str, Any], index: int, amount: Amounts, rates: Mapping[Any, Mapping[str, Any]]
) -> tuple[dict[str, Any], Decimal]:
    """The canonical line and the line's subtotal (the order's subtotal is their sum)."""
    where: list[str | int] = ["line_items", index]
    quantity = normalize.quantity(item, "quantity", where)
    if item.get("id") is None:
        raise normalize.error([*where, "id"], "missing line id")
    # subtotal is quantity x the unit price before discounts, total the same after them
    # (both net of tax). ``price`` is total / quantity, after discounts, as a JSON number: not
    # used. A subtotal that does not divide by the quantity (10.00 for 3) gets a unit price
    # rounded with the channel's rule, and the totals check shows the cent it loses.
    line_subtotal = amount.required(item, "subtotal", where)
    line_total = amount.required(item, "total", where)
    tax_lines = []
    for j, tax in enumerate(normalize.list_of(item, "taxes")):
        rate = rates.get(tax.get("id"))
        tax_lines.append(
            {
                "title": str((rate or {}).get("label") or (rate or {}).get("rate_code") or ""),
                "rate": _rate_percent(rate),
                "amount": str(amount.optional(tax, "total", [*where, "taxes", j])),
            }
        )
    variation = item.get("variation_id")
    return (
        {
            "external_line_id": str(item["id"]),
            "channel_sku": str(item.get("sku") or ""),
            "variant_ref": str(variation if variation else item.get("product_id") or ""),
            "sku": "",
            "title": html.unescape(str(item.get("name") or "")),
            "quantity": quantity,
            "unit_price": str(amount.quantize(line_subtotal / quantity)),
            "discount": str(line_subtotal - line_total),
            "tax": str(amount.required(item, "total_tax", where)),
            "tax_lines": tax_lines,
        },
        line_subtotal,
    )


def _order_tax_lines(order: Mapping[str, Any], amount: Amounts) -> list[dict[str, Any]]:
    """One per tax rate: what it raised on the items and on shipping together."""
    result = []
    for i, tax in enumerate(normalize.list_of(order, "tax_lines")):
        raised = amount.optional(tax, "tax_total", ["tax_lines", i]) + amount.optional(
            tax, "shipping_tax_total", ["tax_lines", i]
        )
        result.append(
            {
                "title": str(tax.get("label") or tax.get("rate_code") or ""),
                "rate": _rate_percent(tax),
                "amount": str(raised),
            }
        )
    return result


def _refunded(order: Mapping[str, Any], amount: Amounts) -> Decimal:
    """Refunds are listed with negative totals ("-10.00")."""
    total = amount.zero()
    for i, refund in enumerate(normalize.list_of(order, "refunds")):
        total += abs(amount.required(refund, "total", ["refunds", i]))
    return total


def _address(data: Any, path: Keys) -> dict[str, Any] | None:
    """A postal address, or None when there is none (a digital order's shipping block is all
    empty strings). Empty strings are dropped. An address with street, city or postcode but
    no usable country is an error, not something to drop."""
    if not isinstance(data, Mapping):
        return None
    state = str(data.get("state") or "").strip()
    fields = {
        "name": " ".join(str(data[k]).strip() for k in ("first_name", "last_name") if data.get(k)),
        "company": data.get("company"),
        "line1": data.get("address_1"),
        "line2": data.get("address_2"),
        "city": data.get("city"),
        "region": "" if STATE_CODE.fullmatch(state) else state,
        "region_code": state if STATE_CODE.fullmatch(state) else "",
        "postal_code": data.get("postcode"),
        "phone": data.get("phone"),
    }
    return normalize.address(fields, data.get("country"), [*path, "country"])


def _customer(order: Mapping[str, Any]) -> dict[str, Any] | None:
    """From the billing block; ``customer_id`` 0 is a guest checkout."""
    raw = order.get("billing")
    billing: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    customer: dict[str, Any] = {}
    if order.get("customer_id"):
        customer["external_id"] = str(order["customer_id"])
    if billing.get("email"):
        customer["email"] = str(billing["email"])
    name = " ".join(str(billing[k]).strip() for k in ("first_name", "last_name") if billing.get(k))
    if name:
        customer["name"] = name
    if billing.get("phone"):
        customer["phone"] = str(billing["phone"])
    if customer:
        # WooCommerce's order carries no marketing consent (a newsletter plugin keeps it, if
        # any): never assumed.
        customer["accepts_marketing"] = False
    return customer or None


def _source(order: Mapping[str, Any], amount: Amounts) -> dict[str, Any]:
    """Facts for people, never personal data (no customer note, IP or user agent)."""
    source: dict[str, Any] = {
        "status": order.get("status"),
        "payment_method_title": order.get("payment_method_title"),
        "created_via": order.get("created_via"),
        "prices_include_tax": order.get("prices_include_tax") is True,
        "coupon_codes": [
            str(c.get("code")) for c in normalize.list_of(order, "coupon_lines") if c.get("code")
        ],
    }
    ip_hash = client_ip_hash(order.get("customer_ip_address"))
    if ip_hash:
        source["browser_ip_hash"] = ip_hash  # the address itself is never kept
    # Fees (surcharges, or negative fees used as discounts) have no canonical field: they are
    # in WooCommerce's total and their tax in total_tax, so an order with fees does not add up
    # and the totals check flags it; this is where a person sees why.
    fees = normalize.list_of(order, "fee_lines")
    if fees:
        source["fee_total"] = str(
            sum(
                (amount.optional(fee, "total", ["fee_lines", i]) for i, fee in enumerate(fees)),
                amount.zero(),
            )
        )
        source["fee_tax"] = str(
            sum(
                (amount.optional(fee, "total_tax", ["fee_lines", i]) for i, fee in enumerate(fees)),
                amount.zero(),
            )
        )
    acquisition = _acquisition(order)
    if acquisition:
        source["acquisition_source"] = acquisition
    return source


def _acquisition(order: Mapping[str, Any]) -> str:
    """WooCommerce's order attribution (8.5+) in ``meta_data``: the UTM source, else the
    source type (``typein``, ``organic``, ``referral``, ``admin``...)."""
    meta = {
        str(m.get("key")): m.get("value")
        for m in normalize.list_of(order, "meta_data")
        if isinstance(m, Mapping)
    }
    for key in ("_wc_order_attribution_utm_source", "_wc_order_attribution_source_type"):
        found = normalize.acquisition_source(meta.get(key))
        if found:
            return found
    return ""


adapter = WooCommerceChannelAdapter()


def _refunds(order: Mapping[str, Any], amount: Amounts) -> list[dict[str, Any]]:
    """The order's refund summary (``[{id, refund, total: "-10.00"}]``) as canonical refunds:
    the money that went back (WooCommerce states it negative), no lines, its reason."""
    refunds = []
    for i, refund in enumerate(normalize.list_of(order, "refunds")):
        total = abs(amount.required(refund, "total", ["refunds", i]))
        item: dict[str, Any] = {
            "external_id": normalize.external_id(refund.get("id"), ["refunds", i, "id"]),
            "currency": amount.currency,
            "total": str(total),
            "raw": {"total": str(refund.get("total"))},
        }
        if refund.get("refund"):
            item["reason"] = str(refund["refund"])[:64]
        refunds.append(item)
    return refunds
