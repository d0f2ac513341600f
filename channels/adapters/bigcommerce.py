"""BigCommerce: thin ``store/order/*`` webhooks, the order itself pulled from the v2 Orders API.

A webhook says only which order changed (``data.id``). Processing validates the envelope
against ``payload_schema()`` (``bigcommerce_webhook.v1.json``), calls ``fetch()`` for the order,
its products and its shipping addresses, validates that trio against ``fetched_schema()``
(``bigcommerce_order.v2.json``) and normalizes it. Status changes and cancellations need no
special path: the fetched order says what the order is now (``status_id`` 5 is Cancelled).

Authentication is one of BigCommerce's two mechanisms: a Standard Webhooks signature keyed
with the app's client secret (``channel.secret``), or a fixed header set when the webhook was
created (``channel.auth_header_name`` / ``auth_header_value``).

``store/order/refund/created`` is as thin (``data.id`` the order, ``data.refund.refund_id`` the
refund): ``read_refund`` fetches the order's refunds from the v3 API
(``GET /v3/orders/{id}/payment_actions/refunds``) and reads the one named into a canonical
refund (``channels.refunds_in`` records it once).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any

from channels import signatures
from channels.adapters import normalize
from channels.adapters.base import (
    AdapterError,
    ChannelConfig,
    Delivery,
    SignatureInvalid,
)
from channels.adapters.normalize import Amounts
from channels.http import session_for
from orders.fingerprints import client_ip_hash

CANCELLED_STATUS_ID = 5
REFUND_TOPIC = "store/order/refund/created"
# Refund item types whose money is a shipping-like charge (as normalize() puts handling and
# gift wrapping with shipping); ORDER is an amount on the order as a whole.
SHIPPING_ITEM_TYPES = frozenset({"SHIPPING", "HANDLING", "GIFT_WRAPPING"})
PAGE_LIMIT = 250  # the v2 API's largest page; its default of 50 would cut long orders short
FINANCIAL_STATUS = {
    "": "pending",
    "pending": "pending",
    "authorized": "authorized",
    "captured": "paid",
    "paid": "paid",
    "partially refunded": "partially_refunded",
    "refunded": "refunded",
    "void": "voided",
}


class BigCommerceChannelAdapter:
    kind = "bigcommerce"

    # --- receiving -----------------------------------------------------------------------
    def verify(
        self, channel: ChannelConfig, headers: Mapping[str, str], body: bytes, *, now: datetime
    ) -> Delivery:
        """Headers come with lower-case names. Nothing in the body is read before the
        signature (or the shared header) has passed."""
        if channel.secret:
            msg_id, sent_at = signatures.standard_webhooks(
                secret=channel.secret, headers=headers, body=body, now=now
            )
            dedup_key: str | None = f"webhook:{msg_id}"
            event_at: datetime | None = sent_at
        elif channel.auth_header_name:
            signatures.shared_header(
                expected_name=channel.auth_header_name,
                expected_value=channel.auth_header_value,
                headers=headers,
            )
            dedup_key, event_at = None, None
        else:
            raise SignatureInvalid(
                "channel has neither a client secret nor an auth header", code="no_secret"
            )

        try:
            envelope = json.loads(body)
            topic = str(envelope["scope"])
        except (ValueError, KeyError, TypeError):
            # Authentic but unreadable: keep it, keyed by its bytes, so processing quarantines it.
            return Delivery(dedup_key=_body_key(body), topic="", event_at=event_at)
        if dedup_key is None:
            # BigCommerce's ``hash`` is a SHA-1 of the payload data and a duplicate firing
            # carries the same one. The data of every ``store/order/updated`` for one order is
            # the same ``{"type": "order", "id": N}``, though, so the hash alone would swallow
            # every later update of that order: ``created_at`` tells the events apart.
            event_hash, created_at = envelope.get("hash"), envelope.get("created_at")
            if not isinstance(event_hash, str) or not event_hash or created_at is None:
                dedup_key = _body_key(body)
            else:
                dedup_key = f"hash:{event_hash}:{created_at}"
            if isinstance(created_at, int):
                event_at = datetime.fromtimestamp(created_at, tz=UTC)
        return Delivery(dedup_key=dedup_key, topic=topic, event_at=event_at)

    def payload_schema(self, topic: str, api_version: str) -> str:
        # Every store/order/* scope (created, updated, statusUpdated, archived, refund/created,
        # ...) has the same thin envelope; other scopes fail its ``scope`` pattern and are
        # quarantined. The order fetched for it is validated against ``fetched_schema()``.
        return "bigcommerce_webhook.v1.json"

    def fetched_schema(self) -> str:
        """The schema ``fetch()``'s result is validated against before ``normalize()``."""
        return "bigcommerce_order.v2.json"

    def cancelled_external_id(self, payload: Mapping[str, Any], topic: str) -> str | None:
        # A cancellation is a status update; the fetched order carries status_id 5.
        return None

    destructive_topics: Mapping[str, str] = MappingProxyType({})

    def confirm_cancel(
        self, channel: ChannelConfig, payload: Mapping[str, Any], topic: str
    ) -> bool | None:
        """No destructive topics: a webhook names only the order, and whether it is cancelled is
        read from the order fetched from the API (``status_id`` 5), so a swapped scope cannot
        cancel anything. Never asked."""
        return None

    # --- pulling the order ---------------------------------------------------------------
    def fetch(self, channel: ChannelConfig, payload: Mapping[str, Any]) -> dict[str, Any]:
        """GET the order, its products and its shipping addresses (``{api_base_url}`` is
        ``https://api.bigcommerce.com/stores/{store_hash}``). A 404 is ``AdapterError(
        retryable=False)``; 429/5xx/timeouts are retried, then ``retryable=True``."""
        if not api_ready(channel):
            raise AdapterError(
                f"BigCommerce channel {channel.id} needs an api_base_url and an access_token "
                "in its credentials to fetch orders",
                retryable=False,
            )
        order_id = int(payload["data"]["id"])
        base = order_url(channel, order_id)
        headers = api_headers(channel)
        with session_for(channel) as session:
            order = session.get_json(base, what="BigCommerce get order", headers=headers)
            products = all_pages(session, f"{base}/products", "products", headers)
            addresses = all_pages(
                session, f"{base}/shipping_addresses", "shipping addresses", headers
            )
        return {"order": order, "products": products, "shipping_addresses": addresses}

    # --- refunds -------------------------------------------------------------------------
    def read_refund(
        self, channel: ChannelConfig, payload: Mapping[str, Any], topic: str
    ) -> tuple[str, dict[str, Any]] | None:
        """(order id, canonical refund) of a ``store/order/refund/created`` webhook; None for
        every other scope. The webhook names the order and the refund only: the order's
        refunds are fetched (v3) and the one named is read; without a refund id, the newest.
        A refund not (yet) in the list is retried (``AdapterError(retryable=True)``)."""
        if topic != REFUND_TOPIC:
            return None
        if not api_ready(channel):
            raise AdapterError(
                f"BigCommerce channel {channel.id} needs an api_base_url and an access_token "
                "in its credentials to fetch refunds",
                retryable=False,
            )
        data = payload.get("data") or {}
        order_id = int(data["id"])
        named = (data.get("refund") or {}).get("refund_id", data.get("refund_id"))
        url = refunds_url(channel, order_id)
        what = "BigCommerce get order refunds"
        with session_for(channel) as session:
            # parse_float: the v3 amounts are JSON numbers; read them as the decimals they are.
            answer = session.json_of(
                session.call("GET", url, what=what, headers=api_headers(channel)),
                what=what, parse_float=Decimal,
            )  # fmt: skip
        refunds = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(refunds, list):
            raise normalize.error("/data", "the refunds answer has no data list")
        refund = _pick_refund(refunds, named)
        if refund is None:
            raise AdapterError(
                f"BigCommerce order {order_id} lists no refund {named}", retryable=True
            )
        currency = str(channel.default_currency or "USD")
        canonical = refund_canonical(refund, Amounts(currency, channel.rounding))
        canonical["order_external_id"] = str(order_id)
        return str(order_id), canonical

    # --- normalizing ---------------------------------------------------------------------
    def normalize(
        self, payload: Mapping[str, Any], channel: ChannelConfig, topic: str
    ) -> dict[str, Any]:
        """The canonical order from the fetched ``{"order", "products", "shipping_addresses"}``.

        Amounts are taken tax-exclusive (``*_ex_tax``) with the tax separate, so
        ``taxes_included`` is false whatever the store's display setting
        (``is_tax_inclusive_pricing``): the API gives both figures either way.
        """
        order = payload["order"]
        currency = normalize.currency(order.get("currency_code"), "/order/currency_code")
        amount = Amounts(currency, channel.rounding)

        # discount_total: the order example (218) only adds up with BOTH discounts taken off:
        # subtotal_inc_tax 67.84 + shipping_cost_inc_tax 12.00 - discount_amount 5.00
        # - coupon_discount 5.00 = 69.84 = total_inc_tax. (discount_amount is the manual /
        # promotion discount, coupon_discount the coupons'; neither includes the other.)
        discount_total = amount.required(order, "discount_amount", "/order") + amount.required(
            order, "coupon_discount", "/order"
        )
        # Handling and gift wrapping are charges the customer pays on top of goods and shipping,
        # and the canonical order has no field of their own: they go with shipping (and their
        # tax with shipping_tax) so the total still adds up. Both are 0 in the samples.
        shipping_total = (
            amount.required(order, "shipping_cost_ex_tax", "/order")
            + amount.required(order, "handling_cost_ex_tax", "/order", default="0")
            + amount.required(order, "wrapping_cost_ex_tax", "/order", default="0")
        )
        shipping_tax = (
            amount.required(order, "shipping_cost_tax", "/order", default="0")
            + amount.required(order, "handling_cost_tax", "/order", default="0")
            + amount.required(order, "wrapping_cost_tax", "/order", default="0")
        )
        addresses = list(payload.get("shipping_addresses") or [])
        payment_status = str(order.get("payment_status") or "").strip().lower()
        status_id = order.get("status_id")

        canonical: dict[str, Any] = {
            "schema_version": 1,
            "external_id": str(order["id"]),
            "order_number": str(order["id"]),
            "currency": currency,
            "placed_at": _rfc1123(order.get("date_created"), "/order/date_created"),
            "cancelled": status_id == CANCELLED_STATUS_ID,
            "financial_status": FINANCIAL_STATUS.get(payment_status, "unknown"),
            "payment_method": str(order.get("payment_method") or ""),
            "customer": _customer(order),
            "billing_address": _address(order.get("billing_address")),
            "shipping_address": _address(addresses[0] if addresses else None),
            "lines": [_line(product, i, amount) for i, product in enumerate(payload["products"])],
            "subtotal": str(amount.required(order, "subtotal_ex_tax", "/order")),
            "discount_total": str(discount_total),
            "shipping_total": str(shipping_total),
            "shipping_tax": str(shipping_tax),
            "tax_total": str(amount.required(order, "total_tax", "/order")),
            "total": str(amount.required(order, "total_inc_tax", "/order")),
            "taxes_included": False,
            "refunded_total": str(amount.required(order, "refunded_amount", "/order", default="0")),
            "source": _source(order, addresses, amount, payload["products"]),
        }
        if order.get("date_modified"):
            canonical["updated_at"] = _rfc1123(order["date_modified"], "/order/date_modified")
        return canonical


# --- helpers -----------------------------------------------------------------------------
def _body_key(body: bytes) -> str:
    from channels.services import body_dedup_key  # services imports the adapters

    return body_dedup_key(body)


def api_ready(channel: ChannelConfig) -> bool:
    """Whether the channel has what a v2 API call needs: the base URL and an access token."""
    return bool(channel.api_base_url and channel.credentials.get("access_token"))


def order_url(channel: ChannelConfig, order_id: int) -> str:
    """``{api_base_url}/v2/orders/{order_id}`` (the base is
    ``https://api.bigcommerce.com/stores/{store_hash}``)."""
    return f"{channel.api_base_url.rstrip('/')}/v2/orders/{order_id}"


def api_headers(channel: ChannelConfig) -> dict[str, str]:
    """The store's ``X-Auth-Token`` and JSON."""
    token = str(channel.credentials.get("access_token") or "")
    return {"X-Auth-Token": token, "Accept": "application/json"}


def refunds_url(channel: ChannelConfig, order_id: int) -> str:
    """``{api_base_url}/v3/orders/{order_id}/payment_actions/refunds``."""
    return f"{channel.api_base_url.rstrip('/')}/v3/orders/{order_id}/payment_actions/refunds"


def _pick_refund(refunds: list[Any], named: Any) -> Mapping[str, Any] | None:
    """The refund the webhook names; without a name, the newest (the highest id)."""
    found = [r for r in refunds if isinstance(r, Mapping) and r.get("id") is not None]
    if named not in (None, ""):
        return next((r for r in found if str(r["id"]) == str(named)), None)
    return max(found, key=lambda r: int(r["id"]), default=None)


def refund_canonical(refund: Mapping[str, Any], amount: Amounts) -> dict[str, Any]:
    """One v3 refund (``payment_actions/refunds``) as a canonical refund.

    ``total`` is the money that moved: the payments BigCommerce did not decline, per provider
    (``total_amount`` is what was asked for; a declined payment moved nothing). PRODUCT items
    are lines by order product id (``item_id``, the ``id`` normalize() gives each line), with
    no amount of their own: BigCommerce states one figure per item, what the payment providers
    paid back, tax included, while the refund's tax is one ``total_tax``; so our arithmetic
    prices the lines and the total is compared with it. SHIPPING, HANDLING and GIFT_WRAPPING
    items are shipping (tax included, as BigCommerce gives it); an ORDER item (an amount on the
    whole order) is an adjustment. BigCommerce says nothing about restocking: the lines carry
    no restock type (the canonical default, no restock). Every item's own figures are in raw."""
    items = normalize.list_of(refund, "items")
    lines: list[dict[str, Any]] = []
    shipping = adjustment = amount.zero()
    kept_items: list[dict[str, Any]] = []
    for j, item in enumerate(items):
        at: list[str | int] = ["items", j]
        kind = str(item.get("item_type") or "").upper()
        requested = amount.parse(
            str(item.get("requested_amount") or "0"), [*at, "requested_amount"]
        )
        kept_items.append({"item_type": kind, "item_id": item.get("item_id"),
                           "quantity": item.get("quantity"), "requested_amount": str(requested),
                           "reason": str(item.get("reason") or "")[:200]})  # fmt: skip
        if kind == "PRODUCT" and item.get("quantity"):
            lines.append({
                "external_line_id": str(item.get("item_id")),
                "quantity": normalize.quantity(item, "quantity", at),
            })  # fmt: skip
        elif kind in SHIPPING_ITEM_TYPES:
            shipping += requested
        else:  # ORDER, or a product refunded by amount only
            adjustment += requested
    payments: dict[str, Decimal] = {}
    payment_ids: dict[str, list[str]] = {}
    declined: list[dict[str, Any]] = []
    for j, pay in enumerate(normalize.list_of(refund, "payments")):
        value = amount.parse(str(pay.get("amount") or "0"), ["payments", j, "amount"])
        provider = str(pay.get("provider_id") or "unknown")
        if pay.get("is_declined"):
            declined.append({"provider_id": provider, "amount": str(value)})
            continue
        payments[provider] = payments.get(provider, amount.zero()) + value
        payment_ids.setdefault(provider, []).append(str(pay.get("id", "")))
    asked = amount.parse(str(refund.get("total_amount") or "0"), ["total_amount"])
    total = sum(payments.values(), amount.zero()) if payments or declined else asked
    canonical: dict[str, Any] = {
        "external_id": normalize.external_id(refund.get("id"), ["id"]),
        "currency": amount.currency,
        "total": str(total),
        "shipping": str(shipping),
        "adjustment": str(adjustment),
        "lines": lines,
        "payments": [{"method": method, "amount": str(value),
                      "external_id": ",".join(payment_ids[method])[:100]}
                     for method, value in payments.items()],
        "reason": str(refund.get("reason") or "")[:64],
        # The whole reason: a refund we sent carries our marker in it ([RF-...]), and the
        # webhook about it must find our refund instead of recording the money twice.
        "note": str(refund.get("reason") or "")[:500],
        "raw": {
            "total_amount": str(asked),
            "total_tax": str(amount.parse(str(refund.get("total_tax") or "0"), ["total_tax"])),
            "uses_merchant_override_values": bool(refund.get("uses_merchant_override_values")),
            "items": kept_items, "declined_payments": declined,
        },
    }  # fmt: skip
    if refund.get("created"):
        canonical["created_at"] = _iso(refund["created"], "/created")
    return canonical


def _iso(value: Any, pointer: str) -> str:
    """A v3 ISO 8601 date-time (UTC when it names no offset)."""
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise normalize.error(pointer, "not an ISO 8601 date-time", value) from None
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).isoformat()


def all_pages(session: Any, url: str, what: str, headers: Mapping[str, str]) -> list[Any]:
    """A v2 collection, page by page. v2 answers an empty collection with 204 No Content."""
    items: list[Any] = []
    page = 1
    while True:
        batch = session.get_json(
            url,
            what=f"BigCommerce get order {what}",
            headers=headers,
            params={"page": page, "limit": PAGE_LIMIT},
        )
        if not batch:
            return items
        if not isinstance(batch, list):
            return batch  # not a collection: fetched_schema() reports it, the event is quarantined
        items.extend(batch)
        if len(batch) < PAGE_LIMIT:
            return items
        page += 1


def _rfc1123(value: Any, pointer: str) -> str:
    """BigCommerce v2 dates (``Tue, 05 Mar 2019 21:40:11 +0000``) as ISO 8601."""
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        raise normalize.error(pointer, "not an RFC 1123 date", value) from None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about local time
        when = when.replace(tzinfo=UTC)
    return when.isoformat()


def _line(product: Mapping[str, Any], index: int, amount: Amounts) -> dict[str, Any]:
    where = f"/products/{index}"
    quantity = normalize.quantity(product, "quantity", where)
    discount = sum(
        (
            amount.parse(d.get("amount"), f"{where}/applied_discounts/{j}/amount")
            for j, d in enumerate(product.get("applied_discounts") or [])
        ),
        amount.parse("0", where),
    )
    # The line's tax is its total_tax (price_tax x quantity, before discounts, as the sample
    # shows: 65.23 - 55.99 = 9.24 = price_tax = total_tax at quantity 1). Without it, the same
    # figure from the inc/ex prices.
    if product.get("total_tax") not in (None, ""):
        tax = amount.required(product, "total_tax", where)
    else:
        tax = amount.parse(
            (
                amount.required(product, "price_inc_tax", where)
                - amount.required(product, "price_ex_tax", where)
            )
            * quantity,
            f"{where}/price_inc_tax",
        )
    variant = product.get("variant_id") or product.get("product_id")
    return {
        "external_line_id": str(product["id"]),
        "channel_sku": str(product.get("sku") or ""),
        "variant_ref": str(variant) if variant else "",
        "sku": "",
        "title": str(product.get("name") or ""),
        "quantity": quantity,
        "unit_price": str(amount.required(product, "price_ex_tax", where)),
        "discount": str(discount),
        "tax": str(tax),
    }


def _address(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not data:
        return None
    country = str(data.get("country_iso2") or "").upper()
    if len(country) != 2:
        return None  # digital orders: no postal address worth the name
    name = " ".join(
        part
        for part in (str(data.get("first_name") or ""), str(data.get("last_name") or ""))
        if part
    )
    fields = {
        "name": name,
        "company": data.get("company"),
        "line1": data.get("street_1"),
        "line2": data.get("street_2"),
        "city": data.get("city"),
        "region": data.get("state"),
        "postal_code": data.get("zip"),
        "phone": data.get("phone"),
    }
    address = {key: str(value) for key, value in fields.items() if value}
    address["country_code"] = country
    return address


def _customer(order: Mapping[str, Any]) -> dict[str, Any] | None:
    billing = order.get("billing_address") or {}
    customer: dict[str, Any] = {}
    if order.get("customer_id"):  # 0 is a guest checkout
        customer["external_id"] = str(order["customer_id"])
    if billing.get("email"):
        customer["email"] = str(billing["email"])
    name = " ".join(
        str(billing.get(k) or "") for k in ("first_name", "last_name") if billing.get(k)
    )
    if name:
        customer["name"] = name
    if billing.get("phone"):
        customer["phone"] = str(billing["phone"])
    if customer:
        # The checkout's "send me emails" box (V2 orders ``is_email_opt_in``); unknown is no.
        customer["accepts_marketing"] = order.get("is_email_opt_in") is True
    return customer or None


def _source(
    order: Mapping[str, Any], addresses: list[Any], amount: Amounts, products: Any = ()
) -> dict[str, Any]:
    """Facts for people, no personal data; and the ids a shipment is created with (the
    tracking write-back, ``channels.writeback.bigcommerce``): the order's shipping address ids
    and each product line's ``order_address_id`` (an order may ship to several addresses)."""
    fees = order.get("fees") or []
    # Custom fees: the sample's total_inc_tax does not include them (see normalize), so they
    # are kept here rather than added anywhere. The example spells the field both
    # ``cost_ex_tax`` and ``cost_exc_tax``.
    fees_total = sum(
        (
            amount.parse(
                fee.get("cost_ex_tax", fee.get("cost_exc_tax", "0")), f"/order/fees/{i}/cost_ex_tax"
            )
            for i, fee in enumerate(fees)
        ),
        amount.parse("0", "/order/fees"),
    )
    source: dict[str, Any] = {
        "status": order.get("status", ""),
        "status_id": order.get("status_id"),
        "payment_status": order.get("payment_status", ""),
        "order_source": order.get("order_source", ""),
        "shipping_address_count": len(addresses),
    }
    # The marketplace or app that sent the order (external_source, e.g. "amazon"), else
    # where it was placed (order_source: www, manual, external, mobile...).
    acquisition = normalize.acquisition_source(order.get("external_source")) or (
        normalize.acquisition_source(order.get("order_source"))
    )
    if acquisition:
        source["acquisition_source"] = acquisition
    ip_hash = client_ip_hash(order.get("ip_address") or order.get("ip_address_v6"))
    if ip_hash:
        source["browser_ip_hash"] = ip_hash  # the address itself is never kept
    if fees:
        source["fees_ex_tax"] = str(fees_total)
    address_ids = [a["id"] for a in addresses if isinstance(a, Mapping) and a.get("id")]
    if address_ids:
        source["shipping_address_id"] = address_ids[0]
        source["shipping_address_ids"] = address_ids
    line_addresses = {
        str(p["id"]): p["order_address_id"]
        for p in products or ()
        if isinstance(p, Mapping) and p.get("id") is not None and p.get("order_address_id")
    }
    if line_addresses:
        source["line_address_ids"] = line_addresses
    return source


adapter = BigCommerceChannelAdapter()
