"""The weekly summaries as pages leadership can open (``reviews.summary``), under
``/admin/work/summaries/``: the list of weeks kept, and one week as it was emailed, with the
top failure categories' daily trend as a chart. Permission ``reviews.view_kpis``; else 403."""

from __future__ import annotations

import pygal
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import mark_safe

from reviews.models import WeeklySummary
from reviews.summary import Week

PERM = "reviews.view_kpis"


def _need(request: HttpRequest) -> None:
    if not request.user.has_perm(PERM):
        raise PermissionDenied


def _trend_chart(summary: WeeklySummary) -> str:
    """The top failure categories per day of the week (SVG drawn on the server)."""
    week = Week.parse(summary.week)
    chart = pygal.Line(js=[], disable_xml_declaration=True, width=760, height=260,
                       legend_at_bottom=True, show_minor_x_labels=True,
                       title="Top failure categories per day (occurrences)")  # fmt: skip
    chart.x_labels = [f"{day:%a %d}" for day in week.days]
    for top in summary.figures.get("top_failures", []):
        chart.add(top["label"], top["per_day"])
    return str(chart.render(is_unicode=True))


@staff_member_required
def summaries_page(request: HttpRequest) -> HttpResponse:
    _need(request)
    rows = WeeklySummary.objects.order_by("-starts_on")[:52]
    context = {**admin.site.each_context(request), "title": "Weekly summaries", "rows": rows}
    return TemplateResponse(request, "admin/reviews/summaries.html", context)


@staff_member_required
def latest_summary_page(request: HttpRequest) -> HttpResponse:
    """The newest summary kept (the list when there is none yet): a stable link to print."""
    _need(request)
    newest = WeeklySummary.objects.order_by("-starts_on").first()
    if newest is None:
        return HttpResponseRedirect(reverse("work:summaries"))
    return HttpResponseRedirect(reverse("work:summary", args=[newest.week]))


@staff_member_required
def summary_page(request: HttpRequest, week: str) -> HttpResponse:
    _need(request)
    summary = get_object_or_404(WeeklySummary, week=week.upper())
    figures = summary.figures
    context = {
        **admin.site.each_context(request), "title": f"Weekly summary {summary.week}",
        "summary": summary, "f": figures, "overall": figures["kpis"]["overall"],
        "chart": mark_safe(_trend_chart(summary)) if figures.get("top_failures") else "",  # noqa: S308 (pygal's SVG)
    }  # fmt: skip
    return TemplateResponse(request, "admin/reviews/summary.html", context)
