"""REST API for the outbox: ``/api/v1/outbound-actions/`` (read-only, filters ``order``,
``kind``, ``target``, ``status``) and ``POST /api/v1/outbound-actions/<id>/retry/`` for a dead
action. Thin: parse, authorize, call one service, render."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import django_filters
from django.urls import include, path
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from config.api import IdFilter
from config.api_schema import ErrorSerializer
from fulfillment.models import ActionKind, ActionStatus, OutboundAction
from fulfillment.outbox.services import action_retry_dead, outbound_action_list
from orders import personal_data
from orders.actors import Actor


@extend_schema_field({"type": "object", "additionalProperties": True, "nullable": True})
class RawPayloadField(serializers.JSONField):
    """A raw payload: null unless the requesting user holds ``orders.view_raw_payload``."""

    def to_representation(self, value: Any) -> Any:
        request = self.context.get("request")
        if not personal_data.sees_raw_payloads(getattr(request, "user", None)):
            return None
        return super().to_representation(value)


class OutboundActionSerializer(serializers.ModelSerializer):
    # Declared: a model PositiveIntegerField's bounds differ by database, and so would the schema.
    version = serializers.IntegerField(read_only=True, min_value=1)
    attempts = serializers.IntegerField(read_only=True, min_value=0)
    max_attempts = serializers.IntegerField(read_only=True, min_value=1)
    payload = RawPayloadField(
        read_only=True, help_text="What is sent; null without orders.view_raw_payload."
    )
    result = RawPayloadField(
        read_only=True,
        help_text="What the target answered; null without orders.view_raw_payload.",
    )

    class Meta:
        model = OutboundAction
        fields = ["id", "order", "kind", "target", "version", "idempotency_key", "lane",
                  "status", "attempts", "max_attempts", "next_attempt_at", "lease_expires_at",
                  "last_error", "payload", "result", "correlation_id", "created_at",
                  "updated_at", "completed_at"]  # fmt: skip
        read_only_fields = fields


class OutboundActionFilter(django_filters.FilterSet):
    order = IdFilter(field_name="order_id", help_text="Order id")
    kind = django_filters.MultipleChoiceFilter(choices=ActionKind.choices)
    target = django_filters.CharFilter(help_text="Downstream system, e.g. netsuite")
    status = django_filters.MultipleChoiceFilter(choices=ActionStatus.choices)

    class Meta:
        model = OutboundAction
        fields = ["order", "kind", "target", "status"]


class CanChangeOutboundAction(permissions.BasePermission):
    """Retrying changes the action: ``fulfillment.change_outboundaction``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user and user.is_authenticated and user.has_perm("fulfillment.change_outboundaction")
        )


class OutboundActionViewSet(viewsets.ReadOnlyModelViewSet):
    """Downstream actions of the outbox (ERP, WMS, notifications) with their attempts and
    last error. Needs ``fulfillment.view_outboundaction``."""

    serializer_class = OutboundActionSerializer
    filterset_class = OutboundActionFilter

    def get_queryset(self) -> Any:
        return outbound_action_list()

    def get_permissions(self) -> Sequence[Any]:
        if self.action == "retry":
            return [CanChangeOutboundAction()]
        return super().get_permissions()

    @extend_schema(
        request=None,
        responses={
            200: OutboundActionSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The action is not dead (not_dead)."),
        },
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Try a dead action again from the start of its retry policy (one click).

        409 with ``code`` ``not_dead`` when the action is not dead. Needs
        ``fulfillment.change_outboundaction``.
        """
        revived = action_retry_dead(
            action_id=self.get_object().pk, actor=Actor.for_user(request.user)
        )
        fresh = outbound_action_list().get(pk=revived.pk)  # in-process runs may be done already
        return Response(OutboundActionSerializer(fresh, context={"request": request}).data)


router = DefaultRouter()
router.register("outbound-actions", OutboundActionViewSet, basename="outboundaction")

urlpatterns = [path("", include(router.urls))]
