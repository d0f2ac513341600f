"""Reads for views, the API, the admin and tasks."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from typing import TypedDict

from django.db.models import Count, Prefetch, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from orders.models import Incident, Order, OrderEvent, OrderStatus


def order_list() -> QuerySet[Order]:
    return Order.objects.select_related("channel", "customer").order_by("-placed_at", "-id")


def order_detail_queryset() -> QuerySet[Order]:
    return order_list().prefetch_related(
        "lines",
        Prefetch("events", queryset=OrderEvent.objects.order_by("at", "id")),
        # fulfillment's reservations, by relation name (orders imports no higher app)
        "reservations__warehouse",
        "reservations__order_line",
        "shipments__warehouse",
        "refunds__payments",
    )


def order_get(*, order_id: int) -> Order | None:
    return order_detail_queryset().filter(pk=order_id).first()


# An order recorded without its pipeline on purpose (a generated finance month's history): the
# stuck-order sweeper leaves it alone. Its timeline says so.
PIPELINE_SKIPPED = "pipeline_skipped"


def order_ids_stuck_in_received(*, older_than_seconds: int, limit: int = 500) -> list[int]:
    """Orders still waiting for their pipeline run (its message may have been lost); not those
    recorded without one on purpose (``PIPELINE_SKIPPED``)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        Order.objects.filter(status=OrderStatus.RECEIVED, updated_at__lt=cutoff)
        .exclude(events__action=PIPELINE_SKIPPED)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )


def order_ids_stuck_in_validated(*, older_than_seconds: int, limit: int = 500) -> list[int]:
    """Orders still waiting for their allocation. The pipeline moves an order on from
    ``validated`` in the transaction that validates it, so one left there waits on an
    ``orders.order_allocate`` message (sent after a review approval) that may have been lost."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        Order.objects.filter(status=OrderStatus.VALIDATED, updated_at__lt=cutoff)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )


def incident_list() -> QuerySet[Incident]:
    return Incident.objects.select_related("order", "order__channel").order_by(
        "-last_seen_at", "-id"
    )


class IncidentTrendRow(TypedDict):
    category: str
    day: date
    incidents: int
    occurrences: int


def incident_trend(*, queryset: QuerySet[Incident]) -> list[IncidentTrendRow]:
    """Incidents per category and UTC day first seen, with their occurrences: the trend a
    person reads to see what keeps breaking."""
    rows = (
        queryset.order_by()
        .annotate(day=TruncDate("first_seen_at", tzinfo=UTC))
        .values("category", "day")
        .annotate(incidents=Count("id"), occurrences=Sum("occurrence_count"))
        .order_by("-day", "category")
    )
    return list(rows)
