"""The weekly leadership summary (issue 14, item 5): one ISO week of automation health, emailed
(HTML and text) and kept as a page (``WeeklySummary``).

A week is Monday 00:00 to Monday 00:00 in ``TIME_ZONE``. Every figure is read from what the
week left in the database, so re-running a past week gives the same figures:

- the KPIs of ``reviews.kpis.kpi_report`` for the orders received that week (the same function
  the KPI API answers with, so the summary and ``GET /api/v1/kpis/`` agree for the same days);
- the top 3 failure categories: incidents first seen that week, by occurrences, each with the
  previous week's figure beside it and its count per day (privacy requests are work, not
  failures, and are left out);
- dead actions: the outbound actions that died that week (their ``outbound_dead`` event on the
  order's timeline), per target;
- the review SLA: of the review cases due that week, the share whose first decision (approve,
  reject or escalate) came by the due time;
- the reconciliation variance of the KPI report (unexplained totals per channel and currency).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from orders.errors import InvalidInput
from orders.models import Incident, IncidentCategory, OrderEvent
from reviews.kpis import kpi_report, percent
from reviews.models import ReviewCase, WeeklySummary

log = structlog.get_logger(__name__)

# Categories that are a person's work rather than something that broke.
NOT_FAILURES = frozenset({IncidentCategory.PRIVACY_REQUEST})
DECISIONS = ("review_approved", "review_rejected", "review_escalated")


@dataclass(frozen=True)
class Week:
    """One ISO week in ``TIME_ZONE``: its label (``2026-W48``), Monday and Sunday, and the
    ``[start, end)`` instants in UTC."""

    label: str
    monday: date
    start: datetime
    end: datetime

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)

    @property
    def days(self) -> list[date]:
        return [self.monday + timedelta(days=n) for n in range(7)]

    @classmethod
    def of(cls, monday: date) -> Week:
        zone = ZoneInfo(settings.TIME_ZONE)
        year, number, _ = monday.isocalendar()
        start = datetime.combine(monday, time.min, zone).astimezone(UTC)
        end = datetime.combine(monday + timedelta(days=7), time.min, zone).astimezone(UTC)
        return cls(label=f"{year}-W{number:02d}", monday=monday, start=start, end=end)

    @classmethod
    def parse(cls, text: str) -> Week:
        """``YYYY-Www`` (ISO 8601 week), e.g. ``2026-W48``."""
        value = (text or "").strip().upper()
        try:
            year_text, number_text = value.split("-W")
            monday = date.fromisocalendar(int(year_text), int(number_text), 1)
        except ValueError:
            raise InvalidInput(
                f"Week {text!r} is not an ISO week: use YYYY-Www, e.g. 2026-W48",
                code="invalid_week",
            ) from None
        return cls.of(monday)

    @classmethod
    def containing(cls, moment: datetime | None = None) -> Week:
        """The week ``moment`` (default: now) falls in, on the ``TIME_ZONE`` calendar."""
        day = (moment or timezone.now()).astimezone(ZoneInfo(settings.TIME_ZONE)).date()
        return cls.of(day - timedelta(days=day.weekday()))

    @classmethod
    def last_complete(cls, now: datetime | None = None) -> Week:
        """The last week that has ended (on a Monday morning: the week before)."""
        return cls.containing(now).previous()

    def previous(self) -> Week:
        return Week.of(self.monday - timedelta(days=7))


def jsonable(value: Any) -> Any:
    """Dataclasses, Decimals, dates and datetimes as JSON: Decimals as strings (exact)."""
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# --- the figures --------------------------------------------------------------------------------
def _incidents_by_category(week: Week) -> dict[str, int]:
    rows = (
        Incident.objects.filter(first_seen_at__gte=week.start, first_seen_at__lt=week.end)
        .exclude(category__in=NOT_FAILURES)
        .values("category")
        .annotate(occurrences=Sum("occurrence_count"))
    )
    return {row["category"]: int(row["occurrences"] or 0) for row in rows}


def top_failures(week: Week, limit: int = 3) -> list[dict[str, Any]]:
    """The week's ``limit`` categories with most occurrences (ties: by name), each with the
    previous week's occurrences and the count per day of the week."""
    this, before = _incidents_by_category(week), _incidents_by_category(week.previous())
    top = sorted(this.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    zone = ZoneInfo(settings.TIME_ZONE)
    daily: dict[str, Counter[date]] = defaultdict(Counter)
    rows = (
        Incident.objects.filter(
            first_seen_at__gte=week.start, first_seen_at__lt=week.end,
            category__in=[c for c, _ in top],
        )
        .annotate(day=TruncDate("first_seen_at", tzinfo=zone))
        .values("category", "day")
        .annotate(n=Sum("occurrence_count"))
    )  # fmt: skip
    for row in rows:
        daily[row["category"]][row["day"]] += int(row["n"] or 0)
    return [
        {"category": category, "label": IncidentCategory(category).label,
         "occurrences": count, "previous": before.get(category, 0),
         "change": count - before.get(category, 0),
         "per_day": [daily[category][day] for day in week.days]}
        for category, count in top
    ]  # fmt: skip


def dead_actions(week: Week) -> dict[str, Any]:
    """Outbound actions that died during the week, per target (from their timeline event)."""
    events = OrderEvent.objects.filter(action="outbound_dead", at__gte=week.start, at__lt=week.end)
    per_target: Counter[str] = Counter()
    for data in events.values_list("data", flat=True):
        per_target[str((data or {}).get("target") or "?")] += 1
    return {"total": sum(per_target.values()),
            "per_target": dict(sorted(per_target.items()))}  # fmt: skip


def review_sla(week: Week) -> dict[str, Any]:
    """The review cases due during the week and how many had their first decision in time."""
    cases = dict(
        ReviewCase.objects.filter(sla_due_at__gte=week.start, sla_due_at__lt=week.end).values_list(
            "pk", "sla_due_at"
        )
    )
    first: dict[int, datetime] = {}
    decisions = (
        OrderEvent.objects.filter(action__in=DECISIONS, data__case_id__in=list(cases))
        .values_list("data", "at")
        .order_by("at", "id")
    )
    for data, at in decisions:
        first.setdefault(int(data["case_id"]), at)
    met = sum(1 for pk, due in cases.items() if pk in first and first[pk] <= due)
    return {"due": len(cases), "met": met,
            "met_percent": jsonable(percent(met, len(cases)))}  # fmt: skip


def summary_figures(week: Week) -> dict[str, Any]:
    """Every figure of the week's summary, as JSON (what ``WeeklySummary.figures`` keeps)."""
    report = kpi_report(start=week.start, end=week.end)
    return {
        "week": week.label,
        "from": week.monday.isoformat(),
        "to": week.sunday.isoformat(),
        "time_zone": settings.TIME_ZONE,
        "kpis": jsonable(report),
        "top_failures": top_failures(week),
        "dead_actions": dead_actions(week),
        "review_sla": review_sla(week),
    }


# --- the summary: build, keep, send --------------------------------------------------------------
def _render(summary: WeeklySummary) -> tuple[str, str, str]:
    figures = summary.figures
    overall = figures["kpis"]["overall"]
    subject = (f"Automation health {summary.week}: "
               f"{_shown(overall.get('no_touch_percent'))}% without a human touch, "
               f"{overall.get('orders_received', 0)} orders")  # fmt: skip
    context = {"summary": summary, "f": figures, "overall": overall,
               "page_url": _page_url(summary)}  # fmt: skip
    text = render_to_string("emails/weekly_summary.txt", context)
    html = render_to_string("emails/weekly_summary.html", context)
    return subject, text, html


def _shown(value: Any) -> str:
    return "-" if value in (None, "") else str(value)


def _page_url(summary: WeeklySummary) -> str:
    base = str(getattr(settings, "PUBLIC_BASE_URL", "") or "").rstrip("/")
    return f"{base}{reverse('work:summary', args=[summary.week])}"


@transaction.atomic
def weekly_summary_build(*, week: Week) -> WeeklySummary:
    """Compute the week's figures and keep them with the rendered email (the same row again
    when the week is built again: the figures are recomputed, never added up)."""
    summary, _ = WeeklySummary.objects.select_for_update().get_or_create(
        week=week.label, defaults={"starts_on": week.monday, "ends_on": week.sunday}
    )
    summary.starts_on, summary.ends_on = week.monday, week.sunday
    summary.figures = summary_figures(week)
    summary.subject, summary.text, summary.html = _render(summary)
    summary.save()
    log.info("weekly_summary.built", week=week.label)
    return summary


def recipients_default() -> list[str]:
    return [a for a in getattr(settings, "WEEKLY_SUMMARY_RECIPIENTS", []) if a]


def weekly_summary_send(*, summary: WeeklySummary, to: Sequence[str]) -> int:
    """Email the summary (text with an HTML alternative) to ``to``; records who and when."""
    addresses = sorted({a.strip() for a in to if a and a.strip()})
    if not addresses:
        return 0
    message = EmailMultiAlternatives(
        subject=summary.subject, body=summary.text, to=addresses,
        from_email=settings.DEFAULT_FROM_EMAIL,
    )  # fmt: skip
    message.attach_alternative(summary.html, "text/html")
    sent = message.send()
    WeeklySummary.objects.filter(pk=summary.pk).update(
        emailed_to=addresses, emailed_at=timezone.now()
    )
    log.info("weekly_summary.sent", week=summary.week, recipients=len(addresses))
    return sent
