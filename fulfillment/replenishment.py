"""Replenishment: which SKUs to reorder in which warehouse, how many, and why.

Computed on read, from the rows as they are now (four queries whatever the size of the
catalogue: the active warehouses, the stock levels, the reorder points, and the units shipped
per SKU and warehouse over the trailing window, one aggregate), so the list follows every
stock move at once: there is nothing materialized to refresh or to go stale.

For each (SKU, warehouse) with a stock row or a ``ReorderPoint`` row, in an active warehouse:

- ``velocity`` = units shipped from that warehouse (``ShipmentLine``s of shipments that left,
  by ``shipped_at``) over the trailing ``REPLENISHMENT_VELOCITY_DAYS``, per day.
  Active reservations are demand already known: they are subtracted from ``available``
  (on hand - reserved) and not added to the velocity, which would count them twice.
- ``reorder_point`` = the one set by hand, else ``ceil(velocity x (lead time + safety days))``;
  lead and safety days from the ``ReorderPoint`` row, else the settings' defaults.
- A suggestion when ``available <= reorder_point``. A computed reorder point of 0 (nothing
  shipped in the window) never suggests: a SKU that does not sell is not reordered unless a
  person set a reorder point for it.
- ``target`` = ``order_up_to`` when set, else the reorder point plus one lead time of demand
  (``ceil(velocity x lead time)``, at least 1 above the reorder point); the suggested quantity
  is ``target - available``, never below the supplier's ``min_order_qty``.
- ``days_of_cover`` = available / velocity (0 when nothing is available; empty when nothing
  sells). The list is sorted by days of cover, the most urgent first.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from config.csvfiles import csv_row
from fulfillment.models import ReorderPoint, ShipmentLine, ShipmentStatus, StockLevel, Warehouse
from orders.errors import InvalidInput, NotFound

LEFT_STATES = (
    ShipmentStatus.SHIPPED, ShipmentStatus.IN_TRANSIT, ShipmentStatus.DELIVERED,
    ShipmentStatus.EXCEPTION, ShipmentStatus.RETURNED,
)  # fmt: skip

CSV_COLUMNS = [
    "sku", "warehouse", "on_hand", "reserved", "available", "velocity_per_day", "days_of_cover",
    "lead_time_days", "safety_days", "reorder_point", "reorder_point_source", "target",
    "suggested_quantity", "why",
]  # fmt: skip


@dataclass(frozen=True)
class Suggestion:
    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    available: int
    velocity_per_day: Decimal  # two decimals
    days_of_cover: Decimal | None  # one decimal; None when nothing sells
    lead_time_days: int
    safety_days: int
    reorder_point: int
    reorder_point_source: str  # "set" (by hand) or "computed"
    target: int
    suggested_quantity: int
    window_days: int
    why: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _velocity_window() -> int:
    return max(1, int(settings.REPLENISHMENT_VELOCITY_DAYS))


def shipped_units(*, since: Any, warehouse_ids: list[int] | None = None) -> dict[tuple[str, int],
                                                                                int]:  # fmt: skip
    """Units that left per (SKU, warehouse id) since ``since`` (one aggregate query)."""
    qs = ShipmentLine.objects.filter(
        shipment__status__in=LEFT_STATES, shipment__shipped_at__gte=since
    )
    if warehouse_ids is not None:
        qs = qs.filter(shipment__warehouse_id__in=warehouse_ids)
    rows = qs.values("sku", "shipment__warehouse_id").annotate(units=Sum("quantity"))
    return {(r["sku"], r["shipment__warehouse_id"]): int(r["units"] or 0) for r in rows}


def _ceil_div(a: int, b: int) -> int:
    """ceil(a / b) in whole numbers (a Decimal quotient times b may land a hair above)."""
    return -(-a // b)


def _why(s: dict[str, Any]) -> str:
    velocity, cover = s["velocity_per_day"], s["days_of_cover"]
    if s["reorder_point_source"] == "set":
        point = f"reorder point {s['reorder_point']} (set by hand)"
    else:
        point = (
            f"reorder point {s['reorder_point']} (computed: {velocity}/day x "
            f"({s['lead_time_days']} lead + {s['safety_days']} safety days))"
        )
    cover_words = "no sales in the window" if cover is None else f"{cover} days of cover"
    return (
        f"available {s['available']} (on hand {s['on_hand']} - reserved {s['reserved']}) is at or "
        f"below the {point}; {velocity} units/day shipped over the last {s['window_days']} days, "
        f"{cover_words} against a {s['lead_time_days']}-day lead time; order "
        f"{s['suggested_quantity']} to reach {s['target']}"
    )


def replenishment_suggestions(*, warehouse_code: str | None = None,
                              sku: str | None = None) -> list[Suggestion]:  # fmt: skip
    """Every (SKU, warehouse) at or below its reorder point, most urgent (fewest days of
    cover) first, from the stock as it is at this moment."""
    window = _velocity_window()
    since = timezone.now() - timedelta(days=window)
    warehouses = Warehouse.objects.filter(is_active=True)
    if warehouse_code:
        warehouses = warehouses.filter(code=warehouse_code)
    codes = dict(warehouses.values_list("pk", "code"))
    levels_qs = StockLevel.objects.filter(warehouse_id__in=list(codes))
    points_qs = ReorderPoint.objects.filter(warehouse_id__in=list(codes))
    if sku:
        levels_qs, points_qs = levels_qs.filter(sku=sku), points_qs.filter(sku=sku)
    levels = {(s.sku, s.warehouse_id): s for s in levels_qs}
    points = {(p.sku, p.warehouse_id): p for p in points_qs}
    shipped = shipped_units(since=since, warehouse_ids=list(codes))
    lead_default = int(settings.REPLENISHMENT_DEFAULT_LEAD_TIME_DAYS)
    safety_default = int(settings.REPLENISHMENT_DEFAULT_SAFETY_DAYS)

    out: list[Suggestion] = []
    for key in set(levels) | set(points):
        level, point = levels.get(key), points.get(key)
        on_hand = level.on_hand if level else 0
        reserved = level.reserved if level else 0
        available = on_hand - reserved
        lead = point.lead_time_days if point else lead_default
        safety = point.safety_days if point else safety_default
        units = shipped.get(key, 0)
        velocity = Decimal(units) / Decimal(window)
        if point is not None and point.reorder_point is not None:
            rop, source = point.reorder_point, "set"
        else:
            rop, source = _ceil_div(units * (lead + safety), window), "computed"
            if rop == 0:
                continue  # nothing sells and nobody asked: never a suggestion
        if available > rop:
            continue
        if point is not None and point.order_up_to is not None:
            target = point.order_up_to
        else:
            target = rop + max(1, _ceil_div(units * lead, window))
        quantity = max(target - available, point.min_order_qty if point else 1, 1)
        cover: Decimal | None
        if available <= 0:
            cover = Decimal("0.0")
        elif units == 0:
            cover = None
        else:
            cover = (Decimal(available * window) / Decimal(units)).quantize(
                Decimal("0.1"), ROUND_HALF_UP
            )
        fields: dict[str, Any] = {
            "sku": key[0], "warehouse": codes[key[1]], "on_hand": on_hand, "reserved": reserved,
            "available": available,
            "velocity_per_day": velocity.quantize(Decimal("0.01"), ROUND_HALF_UP),
            "days_of_cover": cover, "lead_time_days": lead, "safety_days": safety,
            "reorder_point": rop, "reorder_point_source": source, "target": target,
            "suggested_quantity": quantity, "window_days": window,
        }  # fmt: skip
        out.append(Suggestion(**fields, why=_why(fields)))
    out.sort(key=lambda s: (s.days_of_cover is None, s.days_of_cover or 0, s.sku, s.warehouse))
    return out


def suggestions_csv(suggestions: list[Suggestion]) -> str:
    """The list as CSV (header ``CSV_COLUMNS``), safe to open in a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for s in suggestions:
        row = s.as_dict()
        writer.writerow(csv_row(row[c] for c in CSV_COLUMNS))
    return buffer.getvalue()


def reorder_point_upsert(
    *,
    sku: str,
    warehouse_code: str,
    reorder_point: int | None,
    lead_time_days: int,
    safety_days: int,
    order_up_to: int | None = None,
    min_order_qty: int = 1,
    notes: str = "",
) -> tuple[ReorderPoint, bool]:
    """Create or replace the reorder point of one SKU in one warehouse; (row, created)."""
    sku = sku.strip()
    if not sku or len(sku) > 100:
        raise InvalidInput("A SKU must be 1 to 100 characters", code="invalid")
    warehouse = Warehouse.objects.filter(code=warehouse_code).first()
    if warehouse is None:
        raise NotFound(f"Warehouse {warehouse_code!r} does not exist")
    numbers = {"reorder_point": reorder_point, "order_up_to": order_up_to,
               "lead_time_days": lead_time_days, "safety_days": safety_days}  # fmt: skip
    for name, value in numbers.items():
        if value is not None and not 0 <= value <= 1_000_000_000:
            raise InvalidInput(f"{name} must be a whole number from 0, not {value}", code="invalid")
    if not 1 <= min_order_qty <= 1_000_000_000:
        raise InvalidInput(f"min_order_qty must be at least 1, not {min_order_qty}", code="invalid")
    if order_up_to is not None and reorder_point is not None and order_up_to <= reorder_point:
        raise InvalidInput(
            f"order_up_to {order_up_to} must be above the reorder point {reorder_point}",
            code="invalid",
        )
    row, created = ReorderPoint.objects.update_or_create(
        sku=sku, warehouse=warehouse,
        defaults={"reorder_point": reorder_point, "lead_time_days": lead_time_days,
                  "safety_days": safety_days, "order_up_to": order_up_to,
                  "min_order_qty": min_order_qty, "notes": notes},
    )  # fmt: skip
    return row, created
