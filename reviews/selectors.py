"""Reads of review cases for the API and the admin."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from reviews.models import ReviewCase


def review_case_list(
    *, reviewer: Any = None, unresolved_only: bool = False
) -> QuerySet[ReviewCase]:
    """The queue: soonest SLA first; optionally only a reviewer's cases or the unresolved ones."""
    qs = ReviewCase.objects.select_related(
        "order", "order__channel", "assignee", "decided_by"
    ).order_by("sla_due_at", "id")
    if unresolved_only:
        qs = qs.unresolved()
    if reviewer is not None:
        qs = qs.filter(assignee=reviewer)
    return qs


def review_case_for_order(*, order_id: int) -> ReviewCase | None:
    """The order's case that still needs a person, if any."""
    return ReviewCase.objects.unresolved().filter(order_id=order_id).first()
