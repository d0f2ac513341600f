"""What an order looks like to a routing rule: its facts, as JSON-ready values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

from orders import money
from orders.models import Order, Product


def home_country() -> str:
    """Where our parcels leave from (``international`` compares the destination with it)."""
    return str(settings.HOME_COUNTRY or "US").upper()


SUBSCRIPTION_FLAG_KEYS = ("subscription_renewal", "is_subscription_renewal", "is_renewal")


def _source_tags(source: Mapping[str, Any]) -> list[str]:
    tags = source.get("tags")
    if isinstance(tags, str):
        return [t.strip() for t in tags.split(",") if t.strip()]
    if isinstance(tags, list):
        return [str(t).strip() for t in tags if str(t).strip()]
    return []


def subscription_renewal(source: Any) -> tuple[bool, str]:
    """Whether the channel's facts (``order.source``) say this order renews a subscription,
    and which fact says so. Read, in this order:

    - ``subscription_renewal`` / ``is_subscription_renewal`` / ``is_renewal`` set to ``true``
      (custom storefronts and ingest files);
    - Shopify's ``source_name == "subscription_contract"`` (orders billed by a subscription
      contract; the first checkout order has another source name);
    - WooCommerce Subscriptions' ``created_via == "subscription"`` (renewal orders);
    - ``tags`` (a comma-separated string or a list) with a tag containing "subscription",
      except tags that also say "first" (ReCharge's "Subscription First Order" is not a
      renewal, its "Subscription Recurring Order" is).
    """
    if not isinstance(source, Mapping):
        return False, ""
    for key in SUBSCRIPTION_FLAG_KEYS:
        if source.get(key) is True:
            return True, f"source {key} is true"
    if source.get("source_name") == "subscription_contract":
        return True, "Shopify source_name is subscription_contract"
    if str(source.get("created_via") or "").lower() == "subscription":
        return True, "WooCommerce created_via is subscription"
    for tag in _source_tags(source):
        low = tag.lower()
        if "subscription" in low and "first" not in low:
            return True, f"order tag {tag!r}"
    return False, ""


def order_with_lines(order: Order | int) -> Order:
    """The order with what routing reads of it: channel, customer and lines (an order that
    already carries them, read with ``select_related`` and ``prefetch_related``, is used as it
    is)."""
    if (
        isinstance(order, Order)
        and "lines" in getattr(order, "_prefetched_objects_cache", {})
        and Order.channel.is_cached(order)
        and Order.customer.is_cached(order)
    ):
        return order
    order_id = order if isinstance(order, int) else order.pk
    return (
        Order.objects.select_related("channel", "customer")
        .prefetch_related("lines")
        .get(pk=order_id)
    )


def catalogue_products(skus: Iterable[str]) -> dict[str, Product]:
    """The catalogue's products of these SKUs, by SKU."""
    wanted = {s for s in skus if s}
    return {p.sku: p for p in Product.objects.filter(sku__in=wanted)} if wanted else {}


def facts_of(order: Order, products: Mapping[str, Product]) -> dict[str, Any]:
    """The facts of an order already read, given its catalogue products (see ``order_facts``)."""
    shipping = order.shipping_address if isinstance(order.shipping_address, dict) else {}
    destination = str(order.ship_to_country or shipping.get("country_code") or "").upper()
    origin = home_country()
    renewal, renewal_reason = subscription_renewal(order.source)
    weight = 0
    unknown: list[str] = []
    weightless: list[str] = []
    tags: set[str] = set()
    for line in order.lines.all():
        product = products.get(line.sku) if line.sku else None
        if product is None:
            unknown.append(line.sku or f"line {line.line_no} (no SKU yet)")
            continue
        if product.weight_grams is None:
            weightless.append(line.sku)
        else:
            weight += int(product.weight_grams) * line.quantity
        tags.update(str(t).strip().lower() for t in (product.tags or []) if str(t).strip())
    return {
        "order_id": order.pk,
        "external_id": order.external_id,
        "total": str(money.quantize(order.total, order.currency, rounding=money.ROUND_HALF_UP)),
        "currency": order.currency,
        "destination_country": destination,
        "origin_country": origin,
        "international": (destination != origin) if destination else None,
        "channel": order.channel.slug,
        # No query when there is no customer: the descriptor answers None from customer_id.
        "customer_type": order.customer.account_type if order.customer is not None else "",
        "subscription_renewal": renewal,
        "subscription_reason": renewal_reason,
        "weight_grams": weight,
        "unknown_skus": sorted(set(unknown)),
        "skus_without_weight": sorted(set(weightless)),
        "sku_tags": sorted(tags),
    }


def order_facts(order: Order | int) -> dict[str, Any]:
    """What routing conditions look at, as JSON-ready values.

    ``total`` (decimal string) and ``currency``; ``destination_country`` (the order's
    ``ship_to_country``, else its shipping address's ``country_code``), ``origin_country``
    (settings ``HOME_COUNTRY``) and ``international`` (``None`` when the destination is
    unknown); ``channel`` (slug); ``customer_type`` (``consumer``/``business``, ``""`` without a
    customer); ``subscription_renewal`` with ``subscription_reason`` (see
    ``subscription_renewal()``); ``weight_grams``: the sum of catalogue weight x quantity, where
    SKUs missing from the catalogue (``unknown_skus``) or without a weight
    (``skus_without_weight``) count as 0; ``sku_tags``: the union of the lines' catalogue tags,
    lower-cased.
    """
    order = order_with_lines(order)
    return facts_of(order, catalogue_products(line.sku for line in order.lines.all()))
