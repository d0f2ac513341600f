"""The human layer's screens, with the admin's look, under ``/admin/work/`` (``reviews.views``
and its neighbours): the review workspace, incidents, the operations dashboard, the KPI page
and the weekly summaries. Each view checks its own permission (403 otherwise)."""

from django.urls import path

from reviews import dashboard_views

urlpatterns: list = [
    # The operations dashboard (ops_admin): its figures refresh through htmx.
    path("dashboard/", dashboard_views.dashboard, name="dashboard"),
]
