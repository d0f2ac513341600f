"""REST API for the inbox: ``/api/v1/inbound-events/`` with a ``replay`` action."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import django_filters
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from channels.models import InboundEvent, InboundSource, InboundStatus, SalesChannel
from channels.services import inbound_event_replay
from config.api import IdFilter
from orders.actors import Actor
from orders.api import ViewThenServicePermission
from orders.errors import PermissionRefused


class InboundErrorSerializer(serializers.Serializer):
    pointer = serializers.CharField(help_text="JSON pointer into the payload ('' = the body).")
    message = serializers.CharField()
    value = serializers.JSONField(help_text="The offending value (personal data redacted).")


class InboundEventSerializer(serializers.ModelSerializer):
    channel: serializers.SlugRelatedField[SalesChannel] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    errors = InboundErrorSerializer(many=True, read_only=True)  # type: ignore[assignment]  # DRF's metaclass pops declared fields: Serializer.errors stays
    attempts = serializers.IntegerField(read_only=True)
    duplicate_deliveries = serializers.IntegerField(read_only=True)
    body_bytes = serializers.IntegerField(read_only=True)

    class Meta:
        model = InboundEvent
        fields = ["id", "channel", "source", "topic", "api_version", "status", "outcome",
                  "errors", "order", "dedup_key", "correlation_id", "received_at",
                  "processed_at", "attempts", "duplicate_deliveries", "body_bytes"]  # fmt: skip
        read_only_fields = fields


class InboundEventFilter(django_filters.FilterSet):
    channel = django_filters.CharFilter(field_name="channel__slug", help_text="Channel slug")
    status = django_filters.MultipleChoiceFilter(choices=InboundStatus.choices)
    source = django_filters.ChoiceFilter(choices=InboundSource.choices)
    topic = django_filters.CharFilter()
    order = IdFilter(field_name="order_id")

    class Meta:
        model = InboundEvent
        fields = ["channel", "status", "source", "topic", "order"]


class InboundEventViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = InboundEventSerializer
    filterset_class = InboundEventFilter

    def get_queryset(self) -> Any:
        return InboundEvent.objects.select_related("channel").order_by("-received_at", "-id")

    def get_permissions(self) -> Sequence[Any]:
        if self.action == "replay":
            return [ViewThenServicePermission()]
        return super().get_permissions()

    @extend_schema(request=None, responses=InboundEventSerializer)
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str | None = None) -> Response:
        """Process a quarantined event again (after a fix). Idempotent: an event that is not
        quarantined is returned unchanged. Still failing: 200 with status ``quarantined`` and
        the new errors."""
        if not request.user.has_perm("channels.replay_inboundevent"):
            raise PermissionRefused("You do not have permission to replay inbound events")
        event = inbound_event_replay(
            event_id=self.get_object().pk, actor=Actor.for_user(request.user)
        )
        return Response(InboundEventSerializer(event).data)


router = DefaultRouter()
router.register("inbound-events", InboundEventViewSet, basename="inbound-event")

urlpatterns = [path("", include(router.urls))]
