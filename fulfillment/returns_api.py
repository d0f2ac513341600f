"""REST API for returns (RMA, ``/api/v1/returns/``): list and detail (filters ``status``,
``order``), customer service starting one (``POST``, needs ``fulfillment.add_return``) and the
actions ``authorize``, ``reject`` (a note is required: the customer is told), ``receive`` (a
condition per return line id) and ``refund`` (needs ``fulfillment.work_return``; the refund is
limited by the role's ``RefundLimit``). Reading needs ``fulfillment.view_return``. Every write is
a ``fulfillment.returns`` service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_filters
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from config.api import IdFilter
from config.api_schema import CONFLICT, NAMED_ROW_MISSING
from fulfillment import returns
from fulfillment.models import (
    PERM_RETURN,
    ItemCondition,
    Return,
    ReturnChannel,
    ReturnLine,
    ReturnReason,
    ReturnResolution,
    ReturnStatus,
)
from orders.actors import Actor
from orders.api import ViewThenServicePermission
from orders.errors import PermissionRefused

PERM_ADD = "fulfillment.add_return"


class ReturnLineSerializer(serializers.ModelSerializer):
    quantity = serializers.IntegerField(read_only=True, min_value=1)
    restocked_quantity = serializers.IntegerField(read_only=True, min_value=0)
    condition = serializers.ChoiceField(
        choices=ItemCondition.choices, allow_blank=True, read_only=True,
        help_text="Set at receipt; empty before.",
    )  # fmt: skip

    class Meta:
        model = ReturnLine
        fields = ["id", "order_line", "sku", "quantity", "reason", "condition",
                  "restocked_quantity"]  # fmt: skip
        read_only_fields = fields


class ReturnSerializer(serializers.ModelSerializer):
    lines = ReturnLineSerializer(many=True, read_only=True)
    refund_reference = serializers.CharField(source="refund.reference", read_only=True,
                                             default=None, allow_null=True)  # fmt: skip
    has_label = serializers.SerializerMethodField()
    # Declared: the model's URLField is blank until the label is bought, and "" is no URI.
    tracking_url = serializers.CharField(
        read_only=True, help_text="The return parcel's tracking page; empty until there is one."
    )

    class Meta:
        model = Return
        fields = ["id", "rma_number", "order", "status", "resolution", "requested_via",
                  "customer_note", "policy_verdict", "auto_authorized", "decision_note",
                  "refund", "refund_reference", "exchange_order", "label_carrier",
                  "tracking_number", "tracking_url", "has_label", "requested_at",
                  "authorized_at", "received_at", "refunded_at", "closed_at",
                  "lines"]  # fmt: skip
        read_only_fields = fields

    def get_has_label(self, obj: Return) -> bool:
        return bool(obj.label_pdf) or bool(obj.label_url)


class ReturnLineRequestSerializer(serializers.Serializer):
    order_line_id = serializers.IntegerField(min_value=1)
    quantity = serializers.IntegerField(min_value=1)
    reason = serializers.ChoiceField(choices=ReturnReason.choices)


class ReturnCreateSerializer(serializers.Serializer):
    order = serializers.IntegerField(min_value=1, help_text="The order's id")
    lines = ReturnLineRequestSerializer(many=True, allow_empty=False)
    resolution = serializers.ChoiceField(choices=ReturnResolution.choices,
                                         default=ReturnResolution.REFUND)  # fmt: skip
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    key = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=100,
        help_text="Idempotency key: the same key twice is one return.",
    )  # fmt: skip


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class RejectSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, help_text="Why (the customer is told).")


class ReceiveSerializer(serializers.Serializer):
    conditions = serializers.DictField(
        child=serializers.ChoiceField(choices=ItemCondition.choices),
        help_text="The condition of every return line, by return line id: "
        '{"12": "restock", "13": "damaged"}.',
    )  # fmt: skip
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ReturnFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ReturnStatus.choices)
    order = IdFilter(field_name="order_id")

    class Meta:
        model = Return
        fields = ["status", "order"]


def _need(request: Request, perm: str, what: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionRefused(f"You do not have permission to {what} ({perm})")


class ReturnViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    serializer_class = ReturnSerializer
    filterset_class = ReturnFilter

    def get_queryset(self) -> Any:
        return (
            Return.objects.select_related("refund")
            .prefetch_related("lines")
            .defer("label_pdf")
            .order_by("-requested_at", "-id")
        )

    def get_permissions(self) -> Any:
        if self.action in ("create", "authorize", "reject", "receive", "refund"):
            return [ViewThenServicePermission()]
        return super().get_permissions()

    def _answer(self, ret: Return, status: int = 200) -> Response:
        fresh = self.get_queryset().get(pk=ret.pk)
        return Response(ReturnSerializer(fresh).data, status=status)

    @extend_schema(request=ReturnCreateSerializer,
                   responses={201: ReturnSerializer, 404: NAMED_ROW_MISSING})  # fmt: skip
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Start a return for some shipped units (customer service). The return policy may
        authorize it at once; otherwise it waits as ``requested``. 400 ``quantity_exceeded``
        for units already returned or not shipped, ``not_returnable`` before shipping."""
        _need(request, PERM_ADD, "start returns")
        body = ReturnCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        ret = returns.return_request(
            order_id=data["order"], via=ReturnChannel.API, actor=Actor.for_user(request.user),
            lines=[returns.ReturnLineRequest(ln["order_line_id"], ln["quantity"], ln["reason"])
                   for ln in data["lines"]],
            note=data["note"], resolution=data["resolution"], key=data["key"],
        )  # fmt: skip
        return self._answer(ret, status=201)

    def _act(self, request: Request, pk: str | None,
             call: Callable[[int, Actor], Return]) -> Response:  # fmt: skip
        _need(request, PERM_RETURN, "work returns")
        ret = self.get_object()
        return self._answer(call(ret.pk, Actor.for_user(request.user)))

    @extend_schema(request=NoteSerializer, responses={200: ReturnSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def authorize(self, request: Request, pk: str | None = None) -> Response:
        """Accept a requested return: its label is bought and emailed to the customer."""
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = body.validated_data["note"]
        return self._act(request, pk, lambda rid, actor: returns.return_authorize(
            return_id=rid, actor=actor, note=note))  # fmt: skip

    @extend_schema(request=RejectSerializer, responses={200: ReturnSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        """Turn a requested or authorized return down; ``note`` (required) is what the
        customer is told."""
        body = RejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = body.validated_data["note"]
        return self._act(request, pk, lambda rid, actor: returns.return_reject(
            return_id=rid, actor=actor, note=note))  # fmt: skip

    @extend_schema(request=ReceiveSerializer, responses={200: ReturnSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def receive(self, request: Request, pk: str | None = None) -> Response:
        """The parcel is back: the condition of every line (restocked units go back on hand),
        then the refund (or the exchange order) as the policy says."""
        body = ReceiveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        conditions: dict[int, str] = {}
        for key, value in body.validated_data["conditions"].items():
            try:
                conditions[int(key)] = value
            except ValueError:
                raise serializers.ValidationError(
                    {"conditions": [f"{key!r} is not a return line id"]}
                ) from None
        note = body.validated_data["note"]
        return self._act(request, pk, lambda rid, actor: returns.return_receive(
            return_id=rid, actor=actor, conditions=conditions, note=note))  # fmt: skip

    @extend_schema(request=None, responses={200: ReturnSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def refund(self, request: Request, pk: str | None = None) -> Response:
        """Refund an authorized or received return now (exactly, once: under its RMA number).
        Your role's refund limit applies: 403 ``refund_limit_exceeded`` above it."""
        return self._act(request, pk, lambda rid, actor: returns.return_refund(
            return_id=rid, actor=actor))  # fmt: skip


router = DefaultRouter()
router.register("returns", ReturnViewSet, basename="return")

urlpatterns = [path("", include(router.urls))]
