"""The human layer's screens, with the admin's look, under ``/admin/work/`` (``reviews.views``
and its neighbours): the review workspace, incidents, the operations dashboard, the KPI page
and the weekly summaries. Each view checks its own permission (403 otherwise)."""

from django.urls import path

from reviews import kpi_views

urlpatterns: list = [
    path("kpis/", kpi_views.kpis_page, name="kpis"),
]
