from __future__ import annotations

from typing import Any

from django.contrib import admin

from fulfillment.models import Reservation, StockLevel, Warehouse


@admin.register(Warehouse)
class WarehouseAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "country", "region", "kind", "priority",
                    "ships_international", "is_active"]  # fmt: skip
    list_filter = ["kind", "country", "ships_international", "is_active"]
    search_fields = ["code", "name", "region"]
    ordering = ["priority", "code"]


@admin.register(StockLevel)
class StockLevelAdmin(admin.ModelAdmin):
    """Read the numbers here; change them with ``import_stock`` or ``stock_restock`` (a
    conditional update that never goes below what is reserved)."""

    list_display = ["sku", "warehouse", "on_hand", "reserved", "available", "updated_at"]
    list_filter = ["warehouse"]
    search_fields = ["sku"]
    list_select_related = ["warehouse"]
    readonly_fields = ["sku", "warehouse", "on_hand", "reserved", "updated_at"]

    @admin.display(description="Available")
    def available(self, obj: StockLevel) -> int:
        return obj.available

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ["id", "order", "sku", "warehouse", "quantity", "status", "expires_at",
                    "created_at"]  # fmt: skip
    list_filter = ["status", "warehouse"]
    search_fields = ["sku", "order__external_id"]
    list_select_related = ["order", "warehouse"]
    readonly_fields = ["order", "order_line", "warehouse", "sku", "quantity", "status",
                       "expires_at", "created_at", "released_at", "consumed_at"]  # fmt: skip
    raw_id_fields = ["order", "order_line"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
