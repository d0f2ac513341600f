"""The operations dashboard, ``/admin/work/dashboard/`` (``work:dashboard``): throughput, per-step
latency, validation failures, outbox retries and dead actions, circuit breakers, queue depth, the
oldest order in flight and the business uptime (``reviews.dashboard`` computes them).

Operations admins only (``reviews.view_operations_dashboard``); anyone else gets a 403. The page
shows no personal data: orders appear by id and status only. The figures part reloads itself
every 15 s through htmx (``hx-get`` of the same URL; ``request.htmx`` answers the fragment alone);
without JavaScript the page refreshes itself (a ``<noscript>`` meta refresh) and has a link.
"""

from __future__ import annotations

from typing import Any

import pygal
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString, mark_safe
from django_htmx.middleware import HtmxDetails
from pygal.style import DefaultStyle

from reviews.dashboard import Throughput, dashboard_figures

PERM_DASHBOARD = "reviews.view_operations_dashboard"
REFRESH_SECONDS = 15
FRAGMENT = "admin/reviews/dashboard/_figures.html"


class HtmxHttpRequest(HttpRequest):
    """A request as ``HtmxMiddleware`` leaves it (django-htmx's typing recipe)."""

    htmx: HtmxDetails


def _need(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _chart(title: str, series: Throughput, *, every: int) -> SafeString:
    """Orders in and out per bucket, drawn on the server (SVG, no script)."""
    chart = pygal.Bar(js=[], disable_xml_declaration=True, width=900, height=240,
                      show_minor_x_labels=False, x_label_rotation=0, legend_at_bottom=True,
                      truncate_label=-1, style=DefaultStyle, title=title)  # fmt: skip
    chart.x_labels = series.labels
    chart.x_labels_major = series.labels[::every]
    # Whole orders: integer ticks, at most about five of them.
    top = max([*series.received, *series.shipped, 1])
    tick = max(1, -(-top // 5))
    chart.y_labels = list(range(0, top + tick, tick))
    chart.add("Received", series.received)
    chart.add("Shipped", series.shipped)
    # pygal escapes every label and title it draws; the SVG is ours.
    return mark_safe(str(chart.render(is_unicode=True)))  # noqa: S308


@staff_member_required
def dashboard(request: HtmxHttpRequest) -> TemplateResponse:
    """The dashboard page, or only its figures when htmx asks for them."""
    _need(request, PERM_DASHBOARD)
    figures = dashboard_figures()
    context: dict[str, Any] = {
        **figures,
        "refresh_seconds": REFRESH_SECONDS,
        "chart_hour": _chart("Orders per minute, last hour", figures["last_hour"], every=10),
        "chart_day": _chart("Orders per hour, last 24 h", figures["last_day"], every=3),
    }
    if request.htmx:
        return TemplateResponse(request, FRAGMENT, context)
    context.update(admin.site.each_context(request), title="Operations dashboard")
    return TemplateResponse(request, "admin/reviews/dashboard/page.html", context)
