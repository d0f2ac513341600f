"""Warehouses and stock for tests, set through the services as an operator would."""

from __future__ import annotations

from typing import Any

from fulfillment.models import StockLevel, Warehouse
from fulfillment.services import stock_restock, warehouse_upsert


def add_warehouse(code: str, country: str = "US", **kwargs: Any) -> Warehouse:
    return warehouse_upsert(code=code, country=country, **kwargs).warehouse


def stock(sku: str, code: str, on_hand: int) -> StockLevel:
    return stock_restock(sku=sku, warehouse_code=code, on_hand=on_hand)


def level(sku: str, code: str) -> StockLevel:
    return StockLevel.objects.get(sku=sku, warehouse__code=code)


def levels(sku: str) -> dict[str, tuple[int, int]]:
    """{warehouse code: (on_hand, reserved)} for a SKU."""
    return {
        s.warehouse.code: (s.on_hand, s.reserved)
        for s in StockLevel.objects.filter(sku=sku).select_related("warehouse")
    }
