"""REST API for stock: ``/api/v1/stock/`` (read-only, filters ``sku`` and ``warehouse``),
shipments, and ``/api/v1/replenishment/`` (what to reorder, JSON or ``?format=csv``)."""

from __future__ import annotations

import json
from typing import Any

import django_filters
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import include, path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, renderers, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.routers import DefaultRouter

from config.api import IdFilter
from fulfillment.carriers import trusted_label_url
from fulfillment.models import Shipment, ShipmentLine, ShipmentStatus, StockLevel, Warehouse
from fulfillment.replenishment import replenishment_suggestions, suggestions_csv
from fulfillment.selectors import shipment_list, stock_level_list
from orders import personal_data


class UntrustedLabelUrl(APIException):
    """The carrier gave a label link we do not follow (not https on its own label hosts)."""

    status_code = 409
    default_code = "label_url_untrusted"
    default_detail = "The label link is not on the carrier's label hosts; it is not followed."


class StockLevelSerializer(serializers.ModelSerializer):
    warehouse: serializers.SlugRelatedField[Warehouse] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
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


class ShipmentLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = ShipmentLine
        fields = ["order_line", "sku", "quantity"]
        read_only_fields = fields


class ShipmentSerializer(serializers.ModelSerializer):
    warehouse: serializers.SlugRelatedField[Warehouse] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    lines = ShipmentLineSerializer(many=True, read_only=True)
    # Declared: the model's URLField is blank until the carrier gives one, and "" is no URI.
    tracking_url = serializers.CharField(
        read_only=True, help_text="The carrier's tracking page; empty until there is one."
    )
    label_url = serializers.SerializerMethodField(
        help_text="The 4x6 PDF label, once bought. It prints the street address and phone: "
        "null without orders.view_contact_details."
    )

    class Meta:
        model = Shipment
        fields = ["id", "order", "warehouse", "status", "carrier", "service_level",
                  "tracking_number", "tracking_url", "rate_amount", "rate_currency", "lines",
                  "label_url", "created_at", "shipped_at", "delivered_at"]  # fmt: skip
        read_only_fields = fields

    def get_label_url(self, shipment: Shipment) -> str | None:
        request = self.context.get("request")
        if not personal_data.sees_contact_details(getattr(request, "user", None)):
            return None
        if not shipment.label_pdf and not shipment.label_zpl:
            # The carrier's own link, only when https on its label hosts (never javascript:).
            return trusted_label_url(shipment.carrier, (shipment.flags or {}).get("label_url"))
        url = reverse("api:shipment-label", kwargs={"pk": shipment.pk})
        return request.build_absolute_uri(url) if request is not None else url


class ShipmentFilter(django_filters.FilterSet):
    order = IdFilter(field_name="order_id")
    status = django_filters.MultipleChoiceFilter(choices=ShipmentStatus.choices)
    tracking_number = django_filters.CharFilter()

    class Meta:
        model = Shipment
        fields = ["order", "status", "tracking_number"]


class ShipmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Shipments with their lines and tracking. Needs ``fulfillment.view_shipment``."""

    serializer_class = ShipmentSerializer
    filterset_class = ShipmentFilter

    def get_queryset(self) -> Any:
        return shipment_list()

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=["pdf", "zpl"], description="pdf (default) or zpl")
        ],  # fmt: skip
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY,
            (200, "text/plain"): OpenApiTypes.STR,
            302: OpenApiResponse(description="To the label file the carrier hosts"),
            409: OpenApiResponse(
                description="label_url_untrusted: the carrier's label link "
                "is not https on its label hosts, so it is not followed"
            ),
        },  # fmt: skip
    )
    @action(detail=True, methods=["get"], url_path="label", url_name="label")
    def label(self, request: Request, pk: str | None = None) -> HttpResponse:
        """Download the label: the 4x6 inch PDF, or ZPL for thermal printers
        (``?label_format=zpl``; ``format`` is DRF's own content negotiation parameter). A label
        the carrier hosts is a redirect to it, only when https on that carrier's label hosts;
        any other link is refused with 409 ``label_url_untrusted``.
        403 without ``orders.view_contact_details``: a label prints the street and phone."""
        shipment = self.get_object()
        if not personal_data.sees_contact_details(request.user):
            raise PermissionDenied("A label shows the street address and phone: your role does "
                                   "not see them (orders.view_contact_details).")  # fmt: skip
        wanted = request.query_params.get("label_format", "pdf")
        name = f"label-{shipment.tracking_number or shipment.pk}"
        if wanted == "zpl" and shipment.label_zpl:
            response = HttpResponse(shipment.label_zpl, content_type="text/plain; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{name}.zpl"'
            return response
        if wanted == "pdf" and shipment.label_pdf:
            response = HttpResponse(bytes(shipment.label_pdf), content_type="application/pdf")
            response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
            return response
        hosted = (shipment.flags or {}).get("label_url")
        if wanted == "pdf" and hosted:
            if trusted_label_url(shipment.carrier, hosted) is None:
                raise UntrustedLabelUrl(
                    f"Shipment {shipment.pk}'s label link is not https on {shipment.carrier}'s "
                    "label hosts; it is not followed. Void and buy the label again, or fetch it "
                    "from the carrier."
                )
            return HttpResponseRedirect(hosted)  # the carrier hosts it
        raise NotFound(f"Shipment {shipment.pk} has no {wanted} label")


class ReplenishmentSerializer(serializers.Serializer):
    sku = serializers.CharField()
    warehouse = serializers.CharField(help_text="Warehouse code")
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField(help_text="on_hand - reserved")
    velocity_per_day = serializers.DecimalField(
        max_digits=12, decimal_places=2,
        help_text="Units shipped from this warehouse per day over the trailing window",
    )  # fmt: skip
    days_of_cover = serializers.DecimalField(
        max_digits=12, decimal_places=1, allow_null=True,
        help_text="available / velocity; null when nothing sold in the window",
    )  # fmt: skip
    lead_time_days = serializers.IntegerField()
    safety_days = serializers.IntegerField()
    reorder_point = serializers.IntegerField()
    reorder_point_source = serializers.ChoiceField(
        choices=["set", "computed"], help_text="set by hand, or computed from velocity"
    )
    target = serializers.IntegerField(help_text="The level the suggestion brings available to")
    suggested_quantity = serializers.IntegerField()
    window_days = serializers.IntegerField(help_text="REPLENISHMENT_VELOCITY_DAYS")
    why = serializers.CharField(help_text="The reason, in words and numbers")


class CsvRenderer(renderers.BaseRenderer):
    """Lets ``?format=csv`` through DRF's content negotiation; the view writes the CSV itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Any = None) -> bytes:  # fmt: skip
        # Only reached for a refusal (401, 403...): its {"code", "detail"} as the body.
        return json.dumps(data).encode("utf-8")


class ReplenishmentViewSet(viewsets.GenericViewSet):
    """What to reorder now: every SKU and warehouse at or below its reorder point, most urgent
    (fewest days of cover) first, computed from the stock as it is at this moment. Needs
    ``fulfillment.view_stocklevel``."""

    serializer_class = ReplenishmentSerializer
    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CsvRenderer]
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return StockLevel.objects.none()  # for the permission check: view_stocklevel

    @extend_schema(
        parameters=[
            OpenApiParameter("warehouse", str, description="Warehouse code"),
            OpenApiParameter("sku", str, description="Exact SKU"),
        ],  # fmt: skip
        responses={
            (200, "application/json"): ReplenishmentSerializer(many=True),
            (200, "text/csv"): OpenApiTypes.STR,
        },  # fmt: skip
    )
    def list(self, request: Request) -> HttpResponse:
        """The suggestions, paginated; ``?format=csv`` (or ``Accept: text/csv``) gives them
        all as one CSV file."""
        warehouse = request.query_params.get("warehouse") or None
        sku = request.query_params.get("sku") or None
        suggestions = replenishment_suggestions(warehouse_code=warehouse, sku=sku)
        if getattr(request.accepted_renderer, "format", "") == "csv":
            response = HttpResponse(suggestions_csv(suggestions), content_type="text/csv")
            response["Content-Disposition"] = 'attachment; filename="replenishment.csv"'
            return response
        page = self.paginate_queryset([s.as_dict() for s in suggestions])
        data = self.get_serializer(page, many=True).data
        return self.get_paginated_response(data)


router = DefaultRouter()
router.register("stock", StockLevelViewSet, basename="stock")
router.register("shipments", ShipmentViewSet, basename="shipment")
router.register("replenishment", ReplenishmentViewSet, basename="replenishment")

urlpatterns = [path("", include(router.urls))]
