"""REST API for the review queue (``/api/v1/reviews/``). Thin: parse, authorize, call, render.

Reading needs ``reviews.view_reviewcase``; the actions also need ``orders.review_order``, which
the services check (403 ``permission_denied``); a refused move is 409.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from config.api import IdFilter
from config.api_schema import CONFLICT
from orders.actors import Actor
from orders.api import ViewThenServicePermission
from reviews import selectors
from reviews.models import ReviewCase, ReviewStatus
from reviews.services import (
    review_case_approve,
    review_case_escalate,
    review_case_reject,
    review_case_start,
)


class SignalSerializer(serializers.Serializer):
    name = serializers.CharField()
    weight = serializers.IntegerField()
    evidence = serializers.CharField()


class ReviewCaseSerializer(serializers.ModelSerializer):
    order_external_id = serializers.CharField(source="order.external_id", read_only=True)
    order_status = serializers.CharField(source="order.status", read_only=True)
    channel = serializers.CharField(source="order.channel.slug", read_only=True)
    reasons = serializers.ListField(child=serializers.CharField(), read_only=True)
    signals = SignalSerializer(many=True, read_only=True)
    assignee: serializers.SlugRelatedField[AbstractBaseUser] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    decided_by: serializers.SlugRelatedField[AbstractBaseUser] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    overdue = serializers.BooleanField(source="is_overdue", read_only=True)

    class Meta:
        model = ReviewCase
        fields = ["id", "order", "order_external_id", "order_status", "channel", "status",
                  "reasons", "score", "signals", "assignee", "sla_due_at", "overdue", "decided_by",
                  "decided_at", "decision_note", "created_at", "updated_at"]  # fmt: skip
        read_only_fields = fields


class ReviewNoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class ReviewReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="Why the order is rejected (goes on the order).")


class ReviewEscalateSerializer(serializers.Serializer):
    note = serializers.CharField(help_text="What the next person should look at.")


class ReviewCaseFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ReviewStatus.choices)
    assignee = django_filters.CharFilter(
        field_name="assignee__" + get_user_model().USERNAME_FIELD, help_text="Username"
    )
    order = IdFilter(field_name="order_id")

    class Meta:
        model = ReviewCase
        fields = ["status", "assignee", "order"]


# What a case action answers: the case, or 409 when its state refuses the move.
MOVED = {200: ReviewCaseSerializer, 409: CONFLICT}


class ReviewCaseViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):  # fmt: skip
    serializer_class = ReviewCaseSerializer
    filterset_class = ReviewCaseFilter

    def get_queryset(self) -> Any:
        return selectors.review_case_list()

    def get_permissions(self) -> Sequence[Any]:
        if self.action in ("start", "approve", "reject", "escalate"):
            return [ViewThenServicePermission()]
        return super().get_permissions()

    def _act(self, request: Request, service: Callable[..., ReviewCase], **kwargs: Any) -> Response:
        case = service(case_id=self.get_object().pk, actor=Actor.for_user(request.user), **kwargs)
        fresh = selectors.review_case_list().get(pk=case.pk)
        return Response(ReviewCaseSerializer(fresh).data)

    @extend_schema(request=None, responses=MOVED)
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        """Take the case (open or escalated -> in review); you become its assignee."""
        return self._act(request, review_case_start)

    @extend_schema(request=ReviewNoteSerializer, responses=MOVED)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Clear the order: it goes on to stock allocation."""
        body = ReviewNoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._act(request, review_case_approve, note=body.validated_data["note"])

    @extend_schema(request=ReviewReasonSerializer, responses=MOVED)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        """Refuse the order: it is cancelled and its stock released."""
        body = ReviewReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._act(request, review_case_reject, reason=body.validated_data["reason"])

    @extend_schema(request=ReviewEscalateSerializer, responses=MOVED)
    @action(detail=True, methods=["post"])
    def escalate(self, request: Request, pk: str | None = None) -> Response:
        """Hand the case on to a senior person; the order stays in review."""
        body = ReviewEscalateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._act(request, review_case_escalate, note=body.validated_data["note"])


router = DefaultRouter()
router.register("reviews", ReviewCaseViewSet, basename="review")

urlpatterns = [path("", include(router.urls))]
