"""The human layer's screens, with the admin's look, under ``/admin/work/`` (``reviews.views``
and its neighbours): the review workspace, incidents, the operations dashboard, the KPI page
and the weekly summaries. Each view checks its own permission (403 otherwise)."""

from django.urls import path  # noqa: F401  (each screen adds its paths below)

from reviews import incident_views

urlpatterns: list = [
    path("incidents/", incident_views.incidents_page, name="incidents"),
]
