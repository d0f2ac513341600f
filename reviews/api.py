"""REST API for the review queue (``/api/v1/reviews/``) and the KPIs (``/api/v1/kpis/``).
Thin: parse, authorize, call, render.

Reading needs ``reviews.view_reviewcase``; the actions also need ``orders.review_order``, which
the services check (403 ``permission_denied``); a refused move is 409. The KPIs need
``reviews.view_kpis`` (ops_admin, finance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import APIView

from channels.models import SalesChannel
from config.api import IdFilter
from config.api_schema import CONFLICT, ErrorSerializer
from orders.actors import Actor
from orders.api import ViewThenServicePermission
from orders.errors import InvalidInput
from reviews import kpis, selectors
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

urlpatterns: list[URLPattern | URLResolver] = [path("", include(router.urls))]


# --- KPIs (GET /api/v1/kpis/) ----------------------------------------------------------------
MAX_KPI_DAYS = 366


class CanViewKpis(permissions.BasePermission):
    """``reviews.view_kpis`` (ops_admin and finance): the KPIs are business figures, not rows
    of a model, so the model permission of the default class does not apply."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("reviews.view_kpis"))


class KpiQuerySerializer(serializers.Serializer):
    from_ = serializers.DateField(
        help_text="First local day (TIME_ZONE), YYYY-MM-DD: orders received from its start."
    )
    to = serializers.DateField(help_text="Last local day, YYYY-MM-DD, included.")
    channel = serializers.CharField(
        required=False, help_text="A sales channel's slug: only its orders."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        # ``from`` is a Python keyword: declared as ``from_``, named ``from`` on the wire.
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["to"] < attrs["from"]:
            raise serializers.ValidationError({"to": "must be on or after 'from'."})
        if (attrs["to"] - attrs["from"]).days >= MAX_KPI_DAYS:
            raise serializers.ValidationError(
                {"to": f"the range may cover at most {MAX_KPI_DAYS} days."}
            )
        return attrs


def _percent(help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=7, decimal_places=2, allow_null=True,
                                    help_text=help_text)  # fmt: skip


class KpiFiguresSerializer(serializers.Serializer):
    orders_received = serializers.IntegerField(help_text="Orders received in the range.")
    orders_no_touch = serializers.IntegerField()
    no_touch_percent = _percent("No user event on the timeline and no review case.")
    orders_shipped = serializers.IntegerField()
    avg_hours_to_ship = _percent("Received -> shipped event, average hours.")
    p90_hours_to_ship = _percent("Received -> shipped event, p90 (nearest rank), hours.")
    same_day_counted = serializers.IntegerField()
    same_day_shipped = serializers.IntegerField()
    same_day_percent = _percent("Shipped on its due day by the warehouse's cut-off and zone.")
    writebacks_succeeded = serializers.IntegerField()
    writebacks_dead = serializers.IntegerField()
    writebacks_open = serializers.IntegerField(help_text="Not finished: not in the rate.")
    writeback_success_percent = _percent("succeeded / (succeeded + dead).")
    orders_returned = serializers.IntegerField()
    return_rate_percent = _percent("Shipped orders with a return / shipped orders.")


class SourceReturnsSerializer(serializers.Serializer):
    acquisition_source = serializers.CharField()
    orders_shipped = serializers.IntegerField()
    orders_returned = serializers.IntegerField()
    return_rate_percent = _percent("Returned / shipped.")


class ChannelKpisSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    figures = KpiFiguresSerializer()
    returns_by_source = SourceReturnsSerializer(many=True)


class VarianceFigureSerializer(serializers.Serializer):
    channel = serializers.CharField()
    currency = serializers.CharField()
    sales = serializers.DecimalField(max_digits=19, decimal_places=4, normalize_output=True)
    unexplained = serializers.DecimalField(max_digits=19, decimal_places=4,
                                           normalize_output=True)  # fmt: skip
    variance_percent = _percent("sales - refunds vs ERP, share of the sales.")


class KpiReportSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="Start of the range (UTC).")
    end = serializers.DateTimeField(help_text="End of the range, excluded (UTC).")
    channel = serializers.CharField(allow_null=True)
    overall = KpiFiguresSerializer()
    channels = ChannelKpisSerializer(many=True)
    returns_by_source = SourceReturnsSerializer(many=True)
    variance = VarianceFigureSerializer(many=True)


class KpiView(APIView):
    permission_classes = [CanViewKpis]

    @extend_schema(
        parameters=[KpiQuerySerializer], operation_id="kpis_retrieve",
        responses={200: KpiReportSerializer, 400: OpenApiResponse(
            ErrorSerializer, description="Bad dates (`errors` names them) or unknown_channel.")},
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        """The automation KPIs of the orders received from ``from`` to ``to`` (local days,
        both included), overall and per channel; definitions in docs/screens.md ("KPIs")."""
        query = KpiQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        channel = None
        if slug := query.validated_data.get("channel"):
            channel = SalesChannel.objects.filter(slug=slug).first()
            if channel is None:
                raise InvalidInput(f"There is no sales channel {slug!r}.", code="unknown_channel")
        start, end = kpis.local_days(query.validated_data["from"], query.validated_data["to"])
        report = kpis.kpi_report(start=start, end=end, channel=channel)
        return Response(KpiReportSerializer(report).data)


urlpatterns += [path("kpis/", KpiView.as_view(), name="kpis")]
