"""REST API for stock: ``/api/v1/stock/`` (read-only, filters ``sku`` and ``warehouse``)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.urls import include, path
from rest_framework import mixins, serializers, viewsets
from rest_framework.routers import DefaultRouter

from fulfillment.models import StockLevel
from fulfillment.selectors import stock_level_list


class StockLevelSerializer(serializers.ModelSerializer):
    warehouse = serializers.SlugRelatedField(slug_field="code", read_only=True)
    on_hand = serializers.IntegerField(read_only=True, min_value=0)
    reserved = serializers.IntegerField(read_only=True, min_value=0)
    available = serializers.IntegerField(
        read_only=True, min_value=0, help_text="on_hand - reserved"
    )

    class Meta:
        model = StockLevel
        fields = ["sku", "warehouse", "on_hand", "reserved", "available", "updated_at"]
        read_only_fields = fields


class StockLevelFilter(django_filters.FilterSet):
    sku = django_filters.CharFilter(help_text="Exact SKU")
    warehouse = django_filters.CharFilter(field_name="warehouse__code", help_text="Warehouse code")

    class Meta:
        model = StockLevel
        fields = ["sku", "warehouse"]


class StockLevelViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Stock per SKU and warehouse. Needs ``fulfillment.view_stocklevel``."""

    serializer_class = StockLevelSerializer
    filterset_class = StockLevelFilter

    def get_queryset(self) -> Any:
        return stock_level_list()


router = DefaultRouter()
router.register("stock", StockLevelViewSet, basename="stock")

urlpatterns = [path("", include(router.urls))]
