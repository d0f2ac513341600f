"""REST API for stock (``/api/v1/stock/``, read-only, filters ``sku`` and ``warehouse``),
shipments with their tracking (``/api/v1/shipments/``), the carriers' inbox
(``/api/v1/carrier-events/`` with a ``replay`` action) and ``/api/v1/replenishment/`` (what to
reorder, JSON or ``?format=csv``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
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
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from config.api import IdFilter
from fulfillment.carrier_events import REPLAY_PERMISSION, VIEW_RAW_PAYLOAD, carrier_event_replay
from fulfillment.carriers import trusted_label_url
from fulfillment.models import (
    CarrierInboundEvent,
    CarrierInboundStatus,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
    StockLevel,
    TrackingEvent,
    Warehouse,
)
from fulfillment.replenishment import replenishment_suggestions, suggestions_csv
from fulfillment.selectors import carrier_event_list, shipment_list, stock_level_list
from orders import personal_data
from orders.actors import Actor
from orders.api import ViewThenServicePermission
from orders.errors import PermissionRefused


class BodyField(serializers.CharField):
    def to_representation(self, value: Any) -> str:
        return bytes(value).decode("utf-8", errors="replace")


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


class TrackingEventSerializer(serializers.ModelSerializer):
    """One carrier event of the parcel, whether or not it changed anything (``effect``)."""

    class Meta:
        model = TrackingEvent
        fields = ["id", "occurred_at", "status", "carrier_status", "carrier_detail", "message",
                  "location", "source", "applied", "effect"]  # fmt: skip
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
    tracking_status = serializers.CharField(
        read_only=True, help_text="Our tracking status of the carrier's latest event ('' before "
        "the first one): unknown, pre_transit, in_transit, out_for_delivery, "
        "available_for_pickup, delivered, failed_attempt, exception, return_to_sender, cancelled.",
    )  # fmt: skip
    tracking_events = TrackingEventSerializer(
        many=True, read_only=True, help_text="Every carrier event of the parcel, oldest first."
    )

    class Meta:
        model = Shipment
        fields = ["id", "order", "warehouse", "status", "carrier", "service_level",
                  "tracking_number", "tracking_url", "rate_amount", "rate_currency", "lines",
                  "label_url", "created_at", "shipped_at", "delivered_at", "tracking_status",
                  "estimated_delivery_from", "estimated_delivery_until",
                  "tracking_events"]  # fmt: skip
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


class CarrierEventErrorSerializer(serializers.Serializer):
    pointer = serializers.CharField(help_text="JSON pointer into the body ('' = the body).")
    message = serializers.CharField()


class CarrierEventSerializer(serializers.ModelSerializer):
    """A carrier webhook in the carriers' inbox. Its raw body is given only to users who may
    view raw carrier payloads (ops_admin, superusers), and only for one event (detail, replay),
    never in lists: it can carry personal data (an EasyPost tracker's ``signed_by``)."""

    errors = CarrierEventErrorSerializer(many=True, read_only=True)  # type: ignore[assignment]  # DRF's metaclass pops declared fields: Serializer.errors stays
    attempts = serializers.IntegerField(read_only=True)
    duplicate_deliveries = serializers.IntegerField(read_only=True)
    # Not read-only so that the schema does not mark it required: it is absent for most users.
    # The viewset has no write action, so nothing is ever written through it.
    body = BodyField(
        required=False, help_text="The body as delivered (UTF-8, undecodable bytes replaced). "
        "Only for users who may view raw carrier payloads, on one event.",
    )  # fmt: skip

    class Meta:
        model = CarrierInboundEvent
        fields = ["id", "carrier", "topic", "status", "outcome", "errors", "tracking_number",
                  "shipment", "dedup_key", "correlation_id", "received_at", "processed_at",
                  "attempts", "duplicate_deliveries", "last_delivery_at", "body"]  # fmt: skip
        read_only_fields = fields[:-1]

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        if getattr(self.context.get("view"), "swagger_fake_view", False):
            return fields  # the schema documents it (not required)
        request = self.context.get("request")
        may_view_raw = request is not None and request.user.has_perm(VIEW_RAW_PAYLOAD)
        if not (may_view_raw and self.context.get("with_raw", False)):
            del fields["body"]
        return fields


class CarrierEventFilter(django_filters.FilterSet):
    carrier = django_filters.CharFilter()
    status = django_filters.MultipleChoiceFilter(choices=CarrierInboundStatus.choices)
    topic = django_filters.CharFilter()
    tracking_number = django_filters.CharFilter()
    shipment = IdFilter(field_name="shipment_id")

    class Meta:
        model = CarrierInboundEvent
        fields = ["carrier", "status", "topic", "tracking_number", "shipment"]


class CarrierEventViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The carriers' inbox (EasyPost tracker webhooks). Needs
    ``fulfillment.view_carrierinboundevent``; ``replay`` needs
    ``fulfillment.replay_carrierinboundevent``."""

    serializer_class = CarrierEventSerializer
    filterset_class = CarrierEventFilter

    def get_queryset(self) -> Any:
        return carrier_event_list(with_body=self.action != "list")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "with_raw": self.action != "list"}

    def get_permissions(self) -> Sequence[Any]:
        if self.action == "replay":
            return [ViewThenServicePermission()]
        return super().get_permissions()

    @extend_schema(request=None, responses=CarrierEventSerializer)
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str | None = None) -> Response:
        """Process a quarantined carrier event again (after a fix: the shipment exists).
        Idempotent: an event that is not quarantined is returned unchanged. Still failing:
        200 with status ``quarantined`` and the new errors."""
        if not request.user.has_perm(REPLAY_PERMISSION):
            raise PermissionRefused("You do not have permission to replay carrier events")
        event = carrier_event_replay(
            event_id=self.get_object().pk, actor=Actor.for_user(request.user)
        )
        return Response(CarrierEventSerializer(event, context=self.get_serializer_context()).data)


router = DefaultRouter()
router.register("stock", StockLevelViewSet, basename="stock")
router.register("shipments", ShipmentViewSet, basename="shipment")
router.register("replenishment", ReplenishmentViewSet, basename="replenishment")
router.register("carrier-events", CarrierEventViewSet, basename="carrier-event")

urlpatterns = [path("", include(router.urls))]
