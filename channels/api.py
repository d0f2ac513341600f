"""REST API for the inbox: ``/api/v1/inbound-events/`` with a ``replay`` action, and
``/api/v1/sku-mappings/`` (map a channel reference, release the orders held for it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import django_filters
from django.urls import include, path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from channels.models import InboundEvent, InboundSource, InboundStatus, SalesChannel, SkuMapping
from channels.services import (
    VIEW_RAW_PAYLOAD,
    inbound_errors_shown,
    inbound_event_replay,
    sku_map_and_release,
)
from config.api import IdFilter
from orders.actors import Actor
from orders.api import ViewThenServicePermission
from orders.errors import InvalidInput, PermissionRefused


class InboundErrorSerializer(serializers.Serializer):
    pointer = serializers.CharField(help_text="JSON pointer into the payload ('' = the body).")
    message = serializers.CharField()
    value = serializers.JSONField(
        help_text='The offending value (personal data redacted); "[redacted]" for users who may '
        "not view raw payloads."
    )


RAW_FIELDS = ("headers", "raw_body", "fetched")


class BodyField(serializers.CharField):
    def to_representation(self, value: Any) -> str:
        return bytes(value).decode("utf-8", errors="replace")


class InboundEventSerializer(serializers.ModelSerializer):
    """An inbox event. Its raw body, headers and fetched payload are given only to users who
    may view raw payloads (ops_admin, superusers), and only for one event (detail, replay),
    never in lists; for everyone else the values its errors quote are "[redacted]"."""

    channel: serializers.SlugRelatedField[SalesChannel] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    errors = InboundErrorSerializer(many=True, read_only=True)  # type: ignore[assignment]  # DRF's metaclass pops declared fields: Serializer.errors stays
    attempts = serializers.IntegerField(read_only=True)
    duplicate_deliveries = serializers.IntegerField(read_only=True)
    body_bytes = serializers.IntegerField(read_only=True)
    # Not read-only so that the schema does not mark them required: they are absent for most
    # users. The viewset has no write action, so nothing is ever written through them.
    headers = serializers.DictField(
        child=serializers.CharField(), required=False,
        help_text="The delivery's headers (no signature or credential kept). Only for users who "
        "may view raw payloads, on one event.",
    )  # fmt: skip
    raw_body = BodyField(
        required=False, help_text="The body as delivered (UTF-8, undecodable bytes replaced). "
        "Only for users who may view raw payloads, on one event.",
    )  # fmt: skip
    fetched = serializers.JSONField(
        required=False, allow_null=True, help_text="What was pulled from the channel's API for "
        "this event. Only for users who may view raw payloads, on one event.",
    )  # fmt: skip

    class Meta:
        model = InboundEvent
        fields = ["id", "channel", "source", "topic", "api_version", "status", "outcome",
                  "errors", "order", "dedup_key", "correlation_id", "received_at",
                  "processed_at", "attempts", "duplicate_deliveries", "body_bytes",
                  *RAW_FIELDS]  # fmt: skip
        read_only_fields = fields[: -len(RAW_FIELDS)]

    def _may_view_raw(self) -> bool:
        request = self.context.get("request")
        return request is not None and request.user.has_perm(VIEW_RAW_PAYLOAD)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        if getattr(self.context.get("view"), "swagger_fake_view", False):
            return fields  # the schema documents them (not required)
        if not (self._may_view_raw() and self.context.get("with_raw", False)):
            for name in RAW_FIELDS:
                del fields[name]
        return fields

    def to_representation(self, instance: InboundEvent) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["errors"] = inbound_errors_shown(data["errors"], raw=self._may_view_raw())
        return data


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
        events = InboundEvent.objects.select_related("channel").order_by("-received_at", "-id")
        return events.defer("raw_body", "fetched") if self.action == "list" else events

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "with_raw": self.action != "list"}

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
        return Response(InboundEventSerializer(event, context=self.get_serializer_context()).data)


class SkuMappingRequestSerializer(serializers.Serializer):
    channel = serializers.SlugField(max_length=50, help_text="The channel's slug.")
    external_ref = serializers.CharField(
        max_length=100, help_text="Variant id, ASIN or seller SKU as the channel sends it."
    )
    sku = serializers.CharField(max_length=100, help_text="Our product's SKU.")


class SkuMappingResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(min_value=1)
    channel = serializers.CharField()
    external_ref = serializers.CharField()
    sku = serializers.CharField()
    created = serializers.BooleanField(help_text="False: the same mapping existed already.")
    released = serializers.IntegerField(min_value=0, help_text="Held orders released now.")
    released_orders = serializers.ListField(child=serializers.IntegerField(min_value=1))
    still_held_orders = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        help_text="Held for this reference too, but another line is still unmapped.",
    )


class SkuMappingViewSet(viewsets.GenericViewSet):
    """Map a channel's product reference to our SKU and release the orders held for it."""

    queryset = SkuMapping.objects.all()  # for the permission: channels.add_skumapping
    serializer_class = SkuMappingRequestSerializer

    @extend_schema(
        request=SkuMappingRequestSerializer,
        responses={
            201: OpenApiResponse(SkuMappingResultSerializer, description="Mapping created."),
            200: OpenApiResponse(SkuMappingResultSerializer,
                                 description="The same mapping existed: nothing created."),
        },
    )  # fmt: skip
    def create(self, request: Request) -> Response:
        """Create the mapping (channel, external_ref) -> sku and release every order on hold
        on that channel whose unmapped lines all resolve now; the pipeline runs them again
        and resolves their ``sku_unmapped`` incidents. Idempotent: the same mapping again
        answers 200 and releases only what is still held. 400 ``unknown_sku`` for a SKU not
        in the catalogue, ``already_mapped`` when the reference maps to another product.
        Needs ``channels.add_skumapping`` and ``orders.hold_order``."""
        body = SkuMappingRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        channel = SalesChannel.objects.filter(slug=body.validated_data["channel"]).first()
        if channel is None:
            raise InvalidInput(f"No channel {body.validated_data['channel']!r}",
                               code="unknown_channel")  # fmt: skip
        outcome = sku_map_and_release(
            channel_id=channel.pk, external_ref=body.validated_data["external_ref"],
            sku=body.validated_data["sku"], actor=Actor.for_user(request.user),
        )  # fmt: skip
        data = {
            "id": outcome.mapping.pk, "channel": channel.slug,
            "external_ref": outcome.mapping.external_ref, "sku": outcome.mapping.product.sku,
            "created": outcome.created, "released": len(outcome.released),
            "released_orders": outcome.released, "still_held_orders": outcome.still_held,
        }  # fmt: skip
        return Response(data, status=status.HTTP_201_CREATED if outcome.created else 200)


router = DefaultRouter()
router.register("inbound-events", InboundEventViewSet, basename="inbound-event")
router.register("sku-mappings", SkuMappingViewSet, basename="sku-mapping")

urlpatterns = [path("", include(router.urls))]
