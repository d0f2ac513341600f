"""REST API for stock: ``/api/v1/stock/`` (read-only, filters ``sku`` and ``warehouse``)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import include, path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.routers import DefaultRouter

from config.api import IdFilter
from fulfillment.carriers import trusted_label_url
from fulfillment.models import Shipment, ShipmentLine, ShipmentStatus, StockLevel, Warehouse
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


router = DefaultRouter()
router.register("stock", StockLevelViewSet, basename="stock")
router.register("shipments", ShipmentViewSet, basename="shipment")

urlpatterns = [path("", include(router.urls))]
