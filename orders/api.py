"""REST API for orders and incidents (``/api/v1/``). Thin: parse, authorize, call, render."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import django_filters
from django.db.models import Model
from django.urls import include, path
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from config.api import IdFilter, UtcDateTimeFilter
from config.api_schema import CONFLICT
from orders import money, personal_data, selectors
from orders.actors import Actor
from orders.errors import InvalidInput
from orders.models import (
    Deliverability,
    Incident,
    IncidentCategory,
    IncidentStatus,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    PaymentStatus,
    Severity,
)
from orders.services import (
    ADDRESS_FIX_MAX,
    ORDER_TRANSITIONS,
    incident_transition,
    order_shipping_address_correct,
    order_transition,
)


class CurrencyAmountsSerializerMixin:
    """Amounts as strings in the row's currency units (``"26.50"`` USD, ``"1200"`` JPY), not
    with the 4 decimals they are stored with; the schema still says decimal string."""

    def to_representation(self, instance: Any) -> Any:
        data = super().to_representation(instance)  # type: ignore[misc]
        currency = getattr(instance, instance.CURRENCY_FIELD)
        for name in instance.MONEY_FIELDS:
            if name in data and getattr(instance, name) is not None:
                data[name] = str(money.normalize(getattr(instance, name), currency))
        return data


class OrderLineSerializer(CurrencyAmountsSerializerMixin, serializers.ModelSerializer):
    # Declared: a model PositiveIntegerField's bounds differ by database, and so would the schema.
    line_no = serializers.IntegerField(read_only=True, min_value=1)
    quantity = serializers.IntegerField(read_only=True, min_value=1)
    # What the channel sent, so that an unmapped line (``sku`` empty) can still be recognised.
    channel_sku = serializers.CharField(
        read_only=True, help_text="The channel's SKU as sent; may be empty."
    )
    variant_ref = serializers.CharField(
        read_only=True, help_text="Variant id, ASIN or seller SKU from the channel; may be empty."
    )

    class Meta:
        model = OrderLine
        fields = ["line_no", "external_line_id", "sku", "channel_sku", "variant_ref", "title",
                  "quantity", "unit_price", "discount_allocation", "tax_allocation"]  # fmt: skip


def requesting_user(field: serializers.Field) -> Any:
    """The user of the request the serializer renders for; None without one (then the
    least is shown)."""
    request = field.context.get("request")
    return getattr(request, "user", None)


class AddressSerializer(serializers.Serializer):
    """An address. Street lines (line1, line2) and phone are present only for those with
    orders.view_contact_details; without it name, company, city, region, postal code and
    country. {} when the order has none."""

    name = serializers.CharField(required=False)
    company = serializers.CharField(required=False)
    line1 = serializers.CharField(required=False, help_text="Needs orders.view_contact_details.")
    line2 = serializers.CharField(required=False, help_text="Needs orders.view_contact_details.")
    city = serializers.CharField(required=False)
    region = serializers.CharField(required=False)
    region_code = serializers.CharField(required=False)
    postal_code = serializers.CharField(required=False)
    country_code = serializers.CharField(required=False, help_text="ISO 3166-1 alpha-2")
    phone = serializers.CharField(required=False, help_text="Needs orders.view_contact_details.")


@extend_schema_field(AddressSerializer)
class AddressField(serializers.JSONField):
    """An order's address as the requesting user may see it (``orders.personal_data``)."""

    def to_representation(self, value: Any) -> Any:
        return personal_data.address_for(requesting_user(self), value)


class OrderEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderEvent
        fields = ["id", "at", "actor_kind", "actor_id", "action", "field", "from_state",
                  "to_state", "correlation_id", "data"]  # fmt: skip
        extra_kwargs = {"data": {"help_text": "What the event recorded. Values under address, "
                                 "street and phone keys read '[redacted]' unless you hold "
                                 "orders.view_raw_payload."}}  # fmt: skip

    def to_representation(self, instance: Any) -> Any:
        # The audit snapshot whole for raw-payload viewers, else its personal parts redacted.
        shown = super().to_representation(instance)
        shown["data"] = personal_data.snapshot_for(requesting_user(self), shown["data"])
        return shown


class OrderSerializer(CurrencyAmountsSerializerMixin, serializers.ModelSerializer):
    # Read-only by slug: the field never loads a channel, and orders names no channels model.
    channel: serializers.SlugRelatedField[Model] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = Order
        fields = ["id", "channel", "external_id", "status", "payment_status", "currency",
                  "subtotal", "discount_total", "shipping_total", "tax_total", "total",
                  "refunded_total", "ship_to_country", "placed_at", "customer",
                  "correlation_id", "risk_score", "status_reason", "updated_at"]  # fmt: skip
        read_only_fields = fields


class ReservationSummarySerializer(serializers.Serializer):
    """Stock held for the order (fulfillment's Reservation, read by relation name only)."""

    id = serializers.IntegerField()
    line_no = serializers.IntegerField(source="order_line.line_no")
    sku = serializers.CharField()
    warehouse = serializers.CharField(source="warehouse.code")
    quantity = serializers.IntegerField()
    status = serializers.CharField()
    expires_at = serializers.DateTimeField()


class ShipmentSummarySerializer(serializers.Serializer):
    """The order's parcels (fulfillment's Shipment, read by relation name only)."""

    id = serializers.IntegerField()
    warehouse = serializers.CharField(source="warehouse.code")
    status = serializers.CharField()
    carrier = serializers.CharField()
    service_level = serializers.CharField()
    tracking_number = serializers.CharField()
    tracking_url = serializers.CharField()
    shipped_at = serializers.DateTimeField(allow_null=True)


class RefundPaymentSummarySerializer(serializers.Serializer):
    method = serializers.CharField()
    amount = serializers.DecimalField(max_digits=19, decimal_places=4)

    def to_representation(self, instance: Any) -> Any:
        return {
            "method": instance.method,
            "amount": str(money.normalize(instance.amount, instance.currency)),
        }


class RefundSummaryOnOrderSerializer(serializers.Serializer):
    """The order's refunds and the money each gave back per payment method (the whole refund:
    ``/api/v1/refunds/{id}/``). Its returns are at ``/api/v1/returns/?order={id}``."""

    id = serializers.IntegerField()
    reference = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]  # the refund's source field
    status = serializers.CharField()
    currency = serializers.CharField()
    amount = serializers.SerializerMethodField()
    payments = RefundPaymentSummarySerializer(many=True)

    def get_amount(self, obj: Any) -> str:
        return str(money.normalize(obj.amount, obj.currency))


class OrderDetailSerializer(OrderSerializer):
    refunds = RefundSummaryOnOrderSerializer(many=True, read_only=True)
    lines = OrderLineSerializer(many=True, read_only=True)
    reservations = ReservationSummarySerializer(many=True, read_only=True)
    shipments = ShipmentSummarySerializer(many=True, read_only=True)
    timeline = OrderEventSerializer(many=True, read_only=True, source="events")
    shipping_address = AddressField(read_only=True)
    billing_address = AddressField(read_only=True)
    # Declared: as a read-only model field its enum would leave out "", what an order holds
    # until the address check has run.
    address_deliverability = serializers.ChoiceField(
        choices=Deliverability.choices, allow_blank=True, read_only=True,
        help_text="confirmed / likely: a verifier said so; unknown: format only; empty: not "
        "checked yet",
    )  # fmt: skip

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "payment_method", "shipping_address",
                  "billing_address", "address_deliverability", "address_confidence",
                  "address_source", "address_checked_at", "risk_signals", "lines",
                  "reservations", "shipments", "refunds", "timeline"]  # fmt: skip
        read_only_fields = fields


class TransitionRequestSerializer(serializers.Serializer):
    transition = serializers.ChoiceField(choices=sorted(ORDER_TRANSITIONS))
    expected_status = serializers.CharField(
        required=False,
        help_text="The state (of the field this transition moves) you saw; refused if stale.",
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    amount = serializers.DecimalField(
        max_digits=19, decimal_places=4, required=False, help_text="For refund_partially."
    )


class ShippingAddressFixSerializer(serializers.Serializer):
    """A corrected shipping address for a held order; name, company and phone stay as they
    came. ``release`` (default true) releases the hold so the pipeline checks it again."""

    line1 = serializers.CharField(max_length=ADDRESS_FIX_MAX["line1"])
    line2 = serializers.CharField(max_length=ADDRESS_FIX_MAX["line2"], required=False,
                                  allow_blank=True, default="")  # fmt: skip
    city = serializers.CharField(max_length=ADDRESS_FIX_MAX["city"])
    region_code = serializers.CharField(max_length=ADDRESS_FIX_MAX["region_code"],
                                        required=False, allow_blank=True, default="")  # fmt: skip
    postal_code = serializers.CharField(max_length=ADDRESS_FIX_MAX["postal_code"],
                                        required=False, allow_blank=True, default="")  # fmt: skip
    country_code = serializers.CharField(min_length=2, max_length=2, help_text="ISO 3166-1 alpha-2")
    release = serializers.BooleanField(required=False, default=True)


class OrderFilter(django_filters.FilterSet):
    channel = django_filters.CharFilter(field_name="channel__slug", help_text="Channel slug")
    external_id = django_filters.CharFilter()
    status = django_filters.MultipleChoiceFilter(choices=OrderStatus.choices)
    payment_status = django_filters.MultipleChoiceFilter(choices=PaymentStatus.choices)
    placed_after = UtcDateTimeFilter(field_name="placed_at", lookup_expr="gte")
    placed_before = UtcDateTimeFilter(field_name="placed_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields = ["channel", "external_id", "status", "payment_status"]


class ViewThenServicePermission(permissions.BasePermission):
    """Actions that call a service need view rights here; the service checks the rest."""

    def has_permission(self, request: Request, view: Any) -> bool:
        model = view.get_queryset().model
        return bool(
            request.user
            and request.user.is_authenticated
            and request.user.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}")
        )


class OrderViewSet(viewsets.ReadOnlyModelViewSet):
    filterset_class = OrderFilter

    def get_queryset(self) -> Any:
        if self.action == "list":
            return selectors.order_list()
        return selectors.order_detail_queryset()

    def get_serializer_class(self) -> Any:
        return OrderSerializer if self.action == "list" else OrderDetailSerializer

    def get_permissions(self) -> Sequence[Any]:
        if self.action in ("transition", "shipping_address"):
            return [ViewThenServicePermission()]
        return super().get_permissions()

    @extend_schema(
        request=ShippingAddressFixSerializer,
        responses={200: OrderDetailSerializer, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="shipping-address")
    def shipping_address(self, request: Request, pk: str | None = None) -> Response:
        """Correct the shipping address of an order on hold (an address incident) and release
        the hold, so the pipeline checks the new address; audited with before and after.

        Needs ``orders.view_contact_details`` and ``orders.hold_order`` (403 otherwise); 409
        ``not_on_hold`` when the order is not on hold; 400 ``invalid_address`` when a required
        part is missing.
        """
        body = ShippingAddressFixSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        release = data.pop("release")
        order = order_shipping_address_correct(
            order_id=self.get_object().pk, address=data, actor=Actor.for_user(request.user),
            release=release,
        )  # fmt: skip
        fresh = selectors.order_detail_queryset().get(pk=order.pk)
        return Response(OrderDetailSerializer(fresh, context={"request": request}).data)

    @extend_schema(
        request=TransitionRequestSerializer, responses={200: OrderDetailSerializer, 409: CONFLICT}
    )
    @action(detail=True, methods=["post"])
    def transition(self, request: Request, pk: str | None = None) -> Response:
        """Apply one transition (``cancel``, ``hold``, ``capture_payment``...) to the order.

        403 ``permission_denied`` when your role may not make this transition, whatever state
        the order is in (asked first); otherwise 409 with ``code`` ``transition_not_allowed``,
        ``condition_not_met`` or ``stale_state`` when the order's state refuses it.
        """
        body = TransitionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        order = self.get_object()
        order_transition(
            order_id=order.pk,
            transition=body.validated_data["transition"],
            actor=Actor.for_user(request.user),
            expected_status=body.validated_data.get("expected_status"),
            reason=body.validated_data.get("reason", ""),
            amount=body.validated_data.get("amount"),
        )
        fresh = selectors.order_detail_queryset().get(pk=order.pk)
        return Response(OrderDetailSerializer(fresh, context={"request": request}).data)


class IncidentSerializer(serializers.ModelSerializer):
    occurrence_count = serializers.IntegerField(read_only=True, min_value=1)
    order_external_id = serializers.CharField(source="order.external_id", read_only=True,
                                              default=None, allow_null=True)  # fmt: skip

    class Meta:
        model = Incident
        fields = ["id", "category", "severity", "status", "order", "order_external_id",
                  "summary", "details", "occurrence_count", "first_seen_at", "last_seen_at",
                  "correlation_id", "resolved_at", "resolution_note"]  # fmt: skip
        read_only_fields = fields


class IncidentActionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class IncidentFilter(django_filters.FilterSet):
    category = django_filters.MultipleChoiceFilter(choices=IncidentCategory.choices)
    status = django_filters.MultipleChoiceFilter(choices=IncidentStatus.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    order = IdFilter(field_name="order_id")

    class Meta:
        model = Incident
        fields = ["category", "status", "severity", "order"]


class IncidentTrendSerializer(serializers.Serializer):
    category = serializers.ChoiceField(choices=IncidentCategory.choices)
    day = serializers.DateField(help_text="UTC day the incidents were first seen")
    incidents = serializers.IntegerField(help_text="Incidents first seen that day")
    occurrences = serializers.IntegerField(help_text="Their occurrences, repeats included")


class IncidentTrendResponseSerializer(serializers.Serializer):
    group_by = serializers.CharField()
    results = IncidentTrendSerializer(many=True)


class PaginatedIncidentListSerializer(serializers.Serializer):
    """A page of incidents (what the pagination writes)."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = IncidentSerializer(many=True)


class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = IncidentSerializer
    filterset_class = IncidentFilter

    def get_queryset(self) -> Any:
        return selectors.incident_list()

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "group_by", str, enum=["category"],
                description="Instead of incidents, their frequency by category and UTC day "
                "(the other filters still apply).",
            )
        ],
        responses={200: OpenApiResponse(
            PolymorphicProxySerializer(
                component_name="IncidentListOrTrend",
                serializers=[PaginatedIncidentListSerializer, IncidentTrendResponseSerializer],
                resource_type_field_name=None, many=False,
            ),
            description="A page of incidents; with group_by=category an object "
            "{group_by, results: [{category, day, incidents, occurrences}]} instead.",
        )},
    )  # fmt: skip
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        group_by = request.query_params.get("group_by")
        if group_by is None:
            return super().list(request, *args, **kwargs)
        if group_by != "category":
            raise InvalidInput(f"group_by must be 'category', not {group_by!r}")
        rows = selectors.incident_trend(queryset=self.filter_queryset(self.get_queryset()))
        return Response(
            {"group_by": "category", "results": IncidentTrendSerializer(rows, many=True).data}
        )

    def get_permissions(self) -> Sequence[Any]:
        if self.action in ("acknowledge", "resolve"):
            return [ViewThenServicePermission()]
        return super().get_permissions()

    def _transition(self, request: Request, name: str) -> Response:
        body = IncidentActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        incident = incident_transition(
            incident_id=self.get_object().pk,
            transition=name,
            actor=Actor.for_user(request.user),
            note=body.validated_data["note"],
        )
        return Response(IncidentSerializer(incident).data)

    @extend_schema(
        request=IncidentActionSerializer, responses={200: IncidentSerializer, 409: CONFLICT}
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        """Someone is on it."""
        return self._transition(request, "acknowledge")

    @extend_schema(
        request=IncidentActionSerializer, responses={200: IncidentSerializer, 409: CONFLICT}
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        """Fixed; ``note`` says how."""
        return self._transition(request, "resolve")


router = DefaultRouter()
router.register("orders", OrderViewSet, basename="order")
router.register("incidents", IncidentViewSet, basename="incident")

urlpatterns = [path("", include(router.urls))]
