"""Reads of review cases for the API and the admin, and of incidents for the incidents screen."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from orders.models import Incident, IncidentCategory, IncidentStatus
from orders.selectors import incident_list, incident_trend
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


# --- incidents -----------------------------------------------------------------------------
TREND_DAYS = 30
WINDOWS = (("today", 1), ("7d", 7), ("30d", 30))


@dataclass
class CategoryFigures:
    """One category's incidents (first seen) and occurrences per window, and its 7-day trend."""

    category: str
    label: str
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # window -> (inc, occ)
    open: int = 0  # open or acknowledged now, whenever first seen
    last7: int = 0  # occurrences of the incidents first seen in the last 7 days
    prev7: int = 0  # ... in the 7 days before

    @property
    def delta(self) -> int:
        return self.last7 - self.prev7

    @property
    def delta_percent(self) -> int | None:
        """Change vs the previous 7 days in whole percent; None when there was nothing."""
        return None if self.prev7 == 0 else round(100 * self.delta / self.prev7)


@dataclass
class IncidentOverview:
    today: date
    days: list[date]
    categories: list[CategoryFigures]  # every category seen in 30 days or open now
    per_day: dict[str, list[int]]  # category -> occurrences per day of ``days``
    top: list[CategoryFigures]  # by occurrences in the last 7 days, at most 3


def incident_overview(*, now: datetime | None = None) -> IncidentOverview:
    """What keeps breaking: per category, the incidents first seen today (UTC), in 7 and in 30
    days with their occurrences; the per-day series for the trend chart; the top 3 categories
    by occurrences in the last 7 days with the previous 7 days beside them. Two queries (the
    trend of ``orders.selectors.incident_trend`` and the open counts)."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    start = today - timedelta(days=TREND_DAYS - 1)
    since = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    rows = incident_trend(queryset=Incident.objects.filter(first_seen_at__gte=since))
    open_now = dict(
        Incident.objects.exclude(status=IncidentStatus.RESOLVED)
        .order_by()
        .values("category")
        .annotate(n=Count("id"))
        .values_list("category", "n")
    )
    labels = dict(IncidentCategory.choices)
    figures: dict[str, CategoryFigures] = {}

    def of(category: str) -> CategoryFigures:
        if category not in figures:
            figures[category] = CategoryFigures(category, labels.get(category, category),
                                                {w: (0, 0) for w, _ in WINDOWS})  # fmt: skip
        return figures[category]

    days = [start + timedelta(days=n) for n in range(TREND_DAYS)]
    per_day: dict[str, list[int]] = {}
    for row in rows:
        fig, age = of(row["category"]), (today - row["day"]).days
        for window, length in WINDOWS:
            if 0 <= age < length:
                inc, occ = fig.counts[window]
                fig.counts[window] = (inc + row["incidents"], occ + (row["occurrences"] or 0))
        if 0 <= age < 7:
            fig.last7 += row["occurrences"] or 0
        elif 7 <= age < 14:
            fig.prev7 += row["occurrences"] or 0
        if 0 <= age < TREND_DAYS:
            series = per_day.setdefault(row["category"], [0] * TREND_DAYS)
            series[TREND_DAYS - 1 - age] += row["occurrences"] or 0
    for category, n in open_now.items():
        of(category).open = n
    ordered = sorted(figures.values(), key=lambda f: (-f.counts["30d"][1], -f.open, f.category))
    top = sorted((f for f in ordered if f.last7), key=lambda f: (-f.last7, f.category))[:3]
    return IncidentOverview(today=today, days=days, categories=ordered, per_day=per_day, top=top)


def incidents_unresolved(*, category: str) -> QuerySet[Incident]:
    """The open and acknowledged incidents of one category, most recently seen first."""
    return (
        incident_list()
        .select_related("acknowledged_by")
        .filter(category=category)
        .exclude(status=IncidentStatus.RESOLVED)
    )
