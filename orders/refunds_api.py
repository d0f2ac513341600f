"""REST API for refunds (``/api/v1/refunds/``): list and detail (filters ``order``, ``source``,
``status``), a person's refund (``POST``, through ``orders.refunds.refund_issue``: the role's
limit applies, 403 ``refund_limit_exceeded`` above it) and ``confirm_manual`` (refunded by hand
in the channel's own admin). Reading needs ``orders.view_refund``; writing
``orders.issue_refund``."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db import transaction
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from config.api import IdFilter
from config.api_schema import CONFLICT, NAMED_ROW_MISSING
from orders import refunds
from orders.actors import Actor
from orders.api import CurrencyAmountsSerializerMixin, ViewThenServicePermission
from orders.errors import PermissionRefused
from orders.models import Refund, RefundLine, RefundPayment, RefundSource, RefundStatus


class RefundPaymentSerializer(CurrencyAmountsSerializerMixin, serializers.ModelSerializer):
    class Meta:
        model = RefundPayment
        fields = ["method", "amount"]
        read_only_fields = fields


class RefundLineSerializer(CurrencyAmountsSerializerMixin, serializers.ModelSerializer):
    quantity = serializers.IntegerField(read_only=True, min_value=1)

    class Meta:
        model = RefundLine
        fields = ["order_line", "quantity", "amount", "tax", "restock_type"]
        read_only_fields = fields


class RefundSummarySerializer(CurrencyAmountsSerializerMixin, serializers.ModelSerializer):
    """A refund as the order detail shows it: the money per payment method."""

    payments = RefundPaymentSerializer(many=True, read_only=True)

    class Meta:
        model = Refund
        fields = ["id", "reference", "source", "status", "currency", "amount", "payments"]
        read_only_fields = fields


class RefundSerializer(CurrencyAmountsSerializerMixin, serializers.ModelSerializer):
    lines = RefundLineSerializer(many=True, read_only=True)
    payments = RefundPaymentSerializer(many=True, read_only=True)

    class Meta:
        model = Refund
        fields = ["id", "reference", "order", "source", "external_id", "status", "currency",
                  "reason", "note", "lines_amount", "lines_tax", "shipping", "shipping_tax",
                  "fees", "restocking_fee", "adjustment", "amount", "failure_reason", "lines",
                  "payments", "correlation_id", "processed_at", "created_at"]  # fmt: skip
        read_only_fields = fields


class RefundLineRequestSerializer(serializers.Serializer):
    order_line_id = serializers.IntegerField(min_value=1)
    quantity = serializers.IntegerField(min_value=1)


class RefundCreateSerializer(serializers.Serializer):
    order = serializers.IntegerField(min_value=1, help_text="The order's id")
    lines = RefundLineRequestSerializer(many=True, required=False, default=list)
    amount = serializers.DecimalField(
        max_digits=19, decimal_places=4, required=False, min_value=0,
        help_text="A plain amount (goodwill); with lines, at most what the lines come to.",
    )  # fmt: skip
    shipping = serializers.BooleanField(
        required=False, default=False, help_text="Also refund what is left of the shipping."
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=400)
    key = serializers.CharField(
        max_length=100, help_text="Idempotency key: the same key twice is one refund."
    )


class RefundFilter(django_filters.FilterSet):
    order = IdFilter(field_name="order_id")
    source = django_filters.MultipleChoiceFilter(choices=RefundSource.choices)
    status = django_filters.MultipleChoiceFilter(choices=RefundStatus.choices)

    class Meta:
        model = Refund
        fields = ["order", "source", "status"]


class RefundViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    serializer_class = RefundSerializer
    filterset_class = RefundFilter

    def get_queryset(self) -> Any:
        return Refund.objects.prefetch_related("lines", "payments").order_by("-created_at", "-id")

    def get_permissions(self) -> Any:
        # Writing is decided by the service (the permission and the role's limit).
        if self.action in ("create", "confirm_manual"):
            return [ViewThenServicePermission()]
        return super().get_permissions()

    @extend_schema(request=RefundCreateSerializer,
                   responses={201: RefundSerializer, 200: RefundSerializer,
                              404: NAMED_ROW_MISSING, 409: CONFLICT})  # fmt: skip
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Refund some units of an order's lines (computed exactly), its shipping, or a plain
        amount. 403 ``refund_limit_exceeded`` above your role's limit (finance has none); 201
        for a new refund, 200 with the first one when ``key`` was used before."""
        if not request.user.has_perm(refunds.PERM_ISSUE):
            raise PermissionRefused("You do not have permission to issue refunds "
                                    "(orders.issue_refund)")  # fmt: skip
        body = RefundCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        result = refunds.refund_issue(
            order_id=data["order"], actor=Actor.for_user(request.user), key=data["key"],
            lines=[refunds.LineRequest(order_line_id=ln["order_line_id"],
                                       quantity=ln["quantity"]) for ln in data["lines"]],
            shipping=data["shipping"], amount=data.get("amount"), reason=data["reason"],
            note=data["note"],
        )  # fmt: skip
        fresh = self.get_queryset().get(pk=result.refund.pk)
        return Response(RefundSerializer(fresh).data, status=201 if result.created else 200)

    @extend_schema(request=None, responses={200: RefundSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def confirm_manual(self, request: Request, pk: str | None = None) -> Response:
        """Say that a refund the channel could not be asked for (status ``manual``) was made by
        hand in the channel's own admin. 409 when the refund is not waiting for that."""
        if not request.user.has_perm(refunds.PERM_ISSUE):
            raise PermissionRefused("You do not have permission to confirm refunds "
                                    "(orders.issue_refund)")  # fmt: skip
        refund = self.get_object()
        with transaction.atomic():
            refunds.refund_transition(refund_id=refund.pk, transition="confirm_manual",
                                      actor=Actor.for_user(request.user))  # fmt: skip
        return Response(RefundSerializer(self.get_queryset().get(pk=refund.pk)).data)


router = DefaultRouter()
router.register("refunds", RefundViewSet, basename="refund")

urlpatterns = [path("", include(router.urls))]
