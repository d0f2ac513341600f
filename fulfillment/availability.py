"""Stock truth for the storefront's structured data: what each SKU can be sold as, and the
shipping speed the operation actually delivers.

- Available to sell = sum over the active warehouses that can serve the destination
  (``Warehouse.can_ship_to``; every active warehouse without a destination) of
  ``on_hand - reserved``.
- ``availability``: ``InStock`` only while such confirmed stock exists; else ``BackOrder`` when
  the shop takes backorders (``AVAILABILITY_BACKORDERS``, on by default because the allocator
  backorders an order it cannot cover and retries it when stock arrives) and some warehouse can
  serve the destination at all; else ``OutOfStock``.
- Handling time, per warehouse, over the trailing ``AVAILABILITY_WINDOW_DAYS``: the share of its
  shipments that left the same (UTC) day their order was placed. At least 90 % same day: 0-1
  days; otherwise the measured p50..p90 of whole days from order to hand-over. The warehouse
  whose handling time applies to a SKU is the one the allocator would pick: the closest, then
  by priority, among those holding available stock of it.
- Transit time, per destination zone (country, or country + region when enough parcels went
  there): days from ``shipped_at`` to ``delivered_at`` of our own delivered parcels in the
  window, p50..p90, each rounded up to whole days.
- Fewer than ``AVAILABILITY_MIN_SAMPLES`` shipments behind a figure: the figure is left out
  and the JSON feed says why (``note``), never an invented number.

Answers are cached (Django's cache) under a key that includes a cheap stock version (the
newest ``StockLevel.updated_at``, its row count, the warehouses' newest ``updated_at``) and the
count of shipped and delivered parcels, so a stock move or a delivery makes the next read fresh.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q
from django.utils import timezone

from fulfillment.models import Shipment, ShipmentStatus, StockLevel, Warehouse
from fulfillment.replenishment import LEFT_STATES
from fulfillment.services import ranked_warehouses
from orders.models import Product

SCHEMA = "https://schema.org/"
SAME_DAY_SHARE = 0.9


@dataclass(frozen=True)
class Span:
    """A measured range of days, with what backs it."""

    min_days: int
    max_days: int
    samples: int
    basis: str  # in words, e.g. "94% of 31 shipments left the same day"

    def as_dict(self) -> dict[str, Any]:
        return {"min_days": self.min_days, "max_days": self.max_days, "samples": self.samples,
                "basis": self.basis}  # fmt: skip


def _percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    rank = max(1, math.ceil(share * len(values)))
    return values[rank - 1]


def _window_start() -> datetime:
    return timezone.now() - timedelta(days=int(settings.AVAILABILITY_WINDOW_DAYS))


def _min_samples() -> int:
    return max(1, int(settings.AVAILABILITY_MIN_SAMPLES))


def handling_times() -> tuple[dict[int, Span], dict[int, str]]:
    """Per warehouse id: the measured handling span, or the reason there is none."""
    rows = Shipment.objects.filter(
        status__in=LEFT_STATES, shipped_at__gte=_window_start()
    ).values_list("warehouse_id", "shipped_at", "order__placed_at")
    days: dict[int, list[int]] = defaultdict(list)
    for warehouse_id, shipped_at, placed_at in rows:
        days[warehouse_id].append(max(0, (shipped_at.date() - placed_at.date()).days))
    spans: dict[int, Span] = {}
    notes: dict[int, str] = {}
    window, needed = int(settings.AVAILABILITY_WINDOW_DAYS), _min_samples()
    for warehouse_id in Warehouse.objects.filter(is_active=True).values_list("pk", flat=True):
        values = sorted(days.get(warehouse_id, []))
        if len(values) < needed:
            notes[warehouse_id] = (
                f"not enough data: {len(values)} shipment(s) in the last {window} days "
                f"(at least {needed} needed)"
            )
            continue
        same_day = sum(1 for v in values if v == 0) / len(values)
        basis = f"{same_day:.0%} of {len(values)} shipments left the day they were ordered"
        if same_day >= SAME_DAY_SHARE:
            spans[warehouse_id] = Span(0, 1, len(values), basis)
        else:
            p50, p90 = int(_percentile(values, 0.5)), int(_percentile(values, 0.9))
            spans[warehouse_id] = Span(p50, max(p50, p90), len(values), basis + " (p50..p90)")
    return spans, notes


def transit_time(*, country: str, region: str = "") -> tuple[Span | None, str, str]:
    """(span, zone, note) of our delivered parcels to ``country`` (and ``region`` when enough
    went there; else the country as a whole)."""
    rows = list(
        Shipment.objects.filter(
            status=ShipmentStatus.DELIVERED, delivered_at__gte=_window_start(),
            shipped_at__isnull=False, order__ship_to_country=country,
        ).values_list("shipped_at", "delivered_at", "order__shipping_address")
    )  # fmt: skip
    needed, window = _min_samples(), int(settings.AVAILABILITY_WINDOW_DAYS)

    def span(items: list[tuple[Any, Any, Any]], zone: str) -> Span | None:
        values = sorted(max(0.0, (d - s).total_seconds() / 86400) for s, d, _a in items)
        if len(values) < needed:
            return None
        p50, p90 = math.ceil(_percentile(values, 0.5)), math.ceil(_percentile(values, 0.9))
        basis = f"{len(values)} delivered parcels to {zone} (p50..p90, days rounded up)"
        return Span(p50, max(p50, p90), len(values), basis)

    if region:
        wanted = region.upper()
        in_region = [r for r in rows if _region_of(r[2], country) == wanted]
        found = span(in_region, f"{country}-{wanted}")
        if found is not None:
            return found, f"{country}-{wanted}", ""
    found = span(rows, country)
    if found is not None:
        return found, country, ""
    return (
        None,
        country,
        (
            f"not enough data: {len(rows)} delivered parcel(s) to {country} in the last {window} "
            f"days (at least {needed} needed)"
        ),
    )


def _region_of(address: Any, country: str) -> str:
    if not isinstance(address, dict):
        return ""
    code = str(address.get("region_code") or address.get("region") or "").strip().upper()
    return code.removeprefix(f"{country}-")


def stock_version() -> str:
    """Changes whenever stock, warehouses or parcels move (cheap aggregate queries)."""
    stock = StockLevel.objects.aggregate(n=Count("pk"), at=Max("updated_at"))
    houses = Warehouse.objects.aggregate(n=Count("pk"), at=Max("updated_at"))
    parcels = Shipment.objects.aggregate(
        shipped=Count("pk", filter=Q(shipped_at__isnull=False)),
        delivered=Count("pk", filter=Q(delivered_at__isnull=False)),
    )
    raw = "|".join(str(v) for v in (*stock.values(), *houses.values(), *parcels.values()))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def availability_feed(*, country: str = "", region: str = "", sku: str = "") -> dict[str, Any]:
    """The feed's data (cached until stock or parcels move)."""
    key = "availability:v1:" + ":".join(
        [country, region, hashlib.sha256(sku.encode()).hexdigest()[:12], stock_version()]
    )
    cached = cache.get(key)
    if cached is not None:
        return dict(cached)
    data = _build(country=country, region=region, sku=sku)
    cache.set(key, data, timeout=int(settings.AVAILABILITY_FEED_CACHE_SECONDS))
    return data


def _build(*, country: str, region: str, sku: str) -> dict[str, Any]:
    if country:
        ranked = ranked_warehouses(country=country, subdivision=f"{country}-{region}"
                                   if region else "")  # fmt: skip
    else:
        ranked = sorted(
            Warehouse.objects.filter(is_active=True), key=lambda w: (w.priority, w.code)
        )
    serving = {w.pk: w for w in ranked}
    order_of = {w.pk: i for i, w in enumerate(ranked)}
    levels = StockLevel.objects.filter(warehouse_id__in=list(serving))
    skus = set(Product.objects.filter(is_active=True).values_list("sku", flat=True))
    skus |= set(StockLevel.objects.values_list("sku", flat=True).distinct())
    if sku:
        levels, skus = levels.filter(sku=sku), {sku} & skus
    per_sku: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for level in levels:
        free = max(0, level.on_hand - level.reserved)
        if free:
            per_sku[level.sku].append((level.warehouse_id, free))
    handling, handling_notes = handling_times()
    transit, zone, transit_note = (None, "", "")
    if country:
        transit, zone, transit_note = transit_time(country=country, region=region)
    else:
        transit_note = "no destination given (?country=): transit time is per destination"
    backorders = bool(settings.AVAILABILITY_BACKORDERS)
    items = []
    for code in sorted(skus):
        held = sorted(per_sku.get(code, []), key=lambda pair: order_of[pair[0]])
        available = sum(free for _w, free in held)
        if available > 0:
            availability = "InStock"
        elif backorders and serving:
            availability = "BackOrder"
        else:
            availability = "OutOfStock"
        item: dict[str, Any] = {
            "sku": code,
            "available": available,
            "availability": availability,
            "warehouses": [{"code": serving[w].code, "available": free} for w, free in held],
        }
        if held:
            ships_from = held[0][0]
            item["ships_from"] = serving[ships_from].code
            span = handling.get(ships_from)
            item["handling_time"] = span.as_dict() if span else None
            if span is None:
                item["handling_time_note"] = handling_notes.get(ships_from, "not measured")
        else:
            item["ships_from"] = None
            item["handling_time"] = None
            item["handling_time_note"] = "no warehouse serving the destination holds it"
        items.append(item)
    return {
        "generated_at": timezone.now().isoformat(),
        "country": country or None,
        "region": region or None,
        "backorders": backorders,
        "warehouses": [w.code for w in ranked],
        "transit_time": transit.as_dict() if transit else None,
        "transit_zone": zone or None,
        "transit_time_note": transit_note or None,
        "skus": items,
    }


def as_jsonld(feed: dict[str, Any]) -> dict[str, Any]:
    """One schema.org ``Offer`` per SKU; ``shippingDetails`` only with a destination, and only
    the delivery times that measured data backs."""
    offers = []
    country, region, transit = feed["country"], feed["region"], feed["transit_time"]
    for item in feed["skus"]:
        offer: dict[str, Any] = {
            "@type": "Offer",
            "sku": item["sku"],
            "availability": SCHEMA + item["availability"],
        }
        if country:
            destination: dict[str, Any] = {"@type": "DefinedRegion", "addressCountry": country}
            if region and feed["transit_zone"] == f"{country}-{region.upper()}":
                destination["addressRegion"] = region.upper()
            delivery: dict[str, Any] = {"@type": "ShippingDeliveryTime"}
            if item["handling_time"]:
                delivery["handlingTime"] = _qv(item["handling_time"])
            if transit:
                delivery["transitTime"] = _qv(transit)
            details: dict[str, Any] = {
                "@type": "OfferShippingDetails", "shippingDestination": destination,
            }  # fmt: skip
            if len(delivery) > 1:
                details["deliveryTime"] = delivery
            offer["shippingDetails"] = details
        offers.append(offer)
    return {"@context": "https://schema.org", "@graph": offers}


def _qv(span: dict[str, Any]) -> dict[str, Any]:
    return {"@type": "QuantitativeValue", "minValue": span["min_days"],
            "maxValue": span["max_days"], "unitCode": "DAY"}  # fmt: skip
