"""The KPI page, ``/admin/work/kpis/`` (``work:kpis``): one ISO week (Monday to Sunday in
``TIME_ZONE``; the current one by default, picked with ``?week=YYYY-Www``) against the week
before, every figure with its week-over-week change (an arrow, green when it got better, red
when worse), a row per channel, the return rate per acquisition source, the reconciliation
variance, and a chart of the daily no-touch % and orders over the eight weeks up to it (SVG
drawn on the server by pygal). Plain GET links and a form: no script needed.

``reviews.view_kpis`` only (ops_admin, finance); anything else is a 403. The figures are
``reviews.kpis``' (the same as ``GET /api/v1/kpis/``); the page shows no personal data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pygal
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import mark_safe

from channels.models import SalesChannel
from reviews import kpis

PERM_KPIS = "reviews.view_kpis"
CHART_WEEKS = 8

# (figure, label, better): better is "up", "down" or "" (neither: a count of work).
FIGURES: list[tuple[str, str, str]] = [
    ("orders_received", "Orders received", ""),
    ("no_touch_percent", "No human touch %", "up"),
    ("avg_hours_to_ship", "Time to fulfil, average (h)", "down"),
    ("p90_hours_to_ship", "Time to fulfil, p90 (h)", "down"),
    ("same_day_percent", "Shipped same day %", "up"),
    ("writeback_success_percent", "Tracking write-back success %", "up"),
    ("return_rate_percent", "Return rate %", "down"),
]
CHANNEL_FIGURES = FIGURES


@dataclass(frozen=True)
class Delta:
    """A figure this week, last week, and how it moved."""

    now: Any
    before: Any
    change: Decimal | None
    arrow: str  # ▲ ▼ or =
    tone: str  # good, bad or flat


def delta(now: Any, before: Any, better: str) -> Delta:
    if now is None or before is None:
        return Delta(now, before, None, "", "flat")
    change = Decimal(now) - Decimal(before)
    if not change:
        return Delta(now, before, change, "=", "flat")
    arrow = "▲" if change > 0 else "▼"
    if not better:
        tone = "flat"
    else:
        tone = "good" if (change > 0) == (better == "up") else "bad"
    return Delta(now, before, change, arrow, tone)


def _need(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _today() -> date:
    return timezone.now().astimezone(ZoneInfo(settings.TIME_ZONE)).date()


def parse_week(text: str) -> date:
    """The Monday of ``YYYY-Www`` (an ISO week, as ``<input type="week">`` sends it)."""
    m = re.fullmatch(r"(\d{4})-W(\d{2})", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a week (YYYY-Www, e.g. 2026-W49)")
    try:
        return date.fromisocalendar(int(m[1]), int(m[2]), 1)
    except ValueError:
        raise ValueError(f"{text!r}: year {m[1]} has no week {int(m[2])}") from None


def week_label(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def _chart(monday: date, channel: SalesChannel | None) -> str:
    """Daily no-touch % (left axis, 0-100) and orders received (right axis) over the eight
    weeks to the picked one, up to today (the days to come have no orders yet)."""
    first = monday - timedelta(weeks=CHART_WEEKS - 1)
    last = min(monday + timedelta(days=6), _today())
    start, end = kpis.local_days(first, max(last, first))
    days = kpis.daily(start=start, end=end, channel=channel)
    most = max((f.orders_received for _, f in days), default=0)
    chart = pygal.Line(js=[], disable_xml_declaration=True, width=900, height=300,
                       show_minor_x_labels=False, x_label_rotation=0, legend_at_bottom=True,
                       truncate_label=-1, range=(0, 100), secondary_range=(0, max(most, 1)),
                       allow_interruptions=True, dots_size=2,
                       title=f"Daily no-touch % and orders, {CHART_WEEKS} weeks to "
                             f"{week_label(monday)}")  # fmt: skip
    labels = [d.strftime("%m-%d") for d, _ in days]
    chart.x_labels = labels
    chart.x_labels_major = labels[::7]
    # Drawing only: the figures themselves stay Decimal everywhere else.
    chart.add("No human touch % (left)", [
        float(f.no_touch_percent) if f.no_touch_percent is not None else None for _, f in days
    ])  # fmt: skip
    chart.add("Orders received (right)", [f.orders_received for _, f in days], secondary=True)
    return str(chart.render(is_unicode=True))


@staff_member_required
def kpis_page(request: HttpRequest) -> HttpResponse:
    _need(request, PERM_KPIS)
    monday = kpis.week_of(_today())
    if request.GET.get("week"):
        try:
            monday = parse_week(request.GET["week"])
        except ValueError as exc:
            messages.error(request, f"{exc}; showing this week.")
    channel = None
    if slug := request.GET.get("channel"):
        channel = SalesChannel.objects.filter(slug=slug).first()
        if channel is None:
            messages.error(request, f"There is no sales channel {slug!r}; showing all channels.")
    start, end = kpis.local_days(monday, monday + timedelta(days=6))
    before_start, before_end = kpis.local_days(monday - timedelta(weeks=1),
                                               monday - timedelta(days=1))  # fmt: skip
    now = kpis.kpi_report(start=start, end=end, channel=channel)
    before = kpis.kpi_report(start=before_start, end=before_end, channel=channel,
                             with_variance=False)  # fmt: skip

    overall = [(label, delta(getattr(now.overall, key), getattr(before.overall, key), better))
               for key, label, better in FIGURES]  # fmt: skip
    earlier = {c.slug: c for c in before.channels}
    slugs = sorted({c.slug for c in now.channels} | set(earlier))
    current = {c.slug: c for c in now.channels}
    channel_rows = []
    for slug in slugs:
        this, last = current.get(slug), earlier.get(slug)
        channel_rows.append((slug, [
            delta(getattr(this.figures, key) if this else None,
                  getattr(last.figures, key) if last else None, better)
            for key, _label, better in CHANNEL_FIGURES
        ]))  # fmt: skip
    context = {
        **admin.site.each_context(request),
        "title": f"KPIs, week {week_label(monday)}",
        "week": week_label(monday), "monday": monday, "sunday": monday + timedelta(days=6),
        "previous_week": week_label(monday - timedelta(weeks=1)),
        "next_week": week_label(monday + timedelta(weeks=1)),
        "is_current": monday == kpis.week_of(_today()),
        "channel": channel, "channels": SalesChannel.objects.order_by("slug"),
        "overall": overall, "headers": [label for _k, label, _b in CHANNEL_FIGURES],
        "channel_rows": channel_rows, "report": now, "before": before,
        "chart": mark_safe(_chart(monday, channel)),  # noqa: S308 (pygal's SVG, no user text)
        "time_zone": settings.TIME_ZONE,
    }  # fmt: skip
    return TemplateResponse(request, "admin/reviews/kpis.html", context)
