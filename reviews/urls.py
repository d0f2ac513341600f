"""The human layer's screens, with the admin's look, under ``/admin/work/``: the review
workspace, incidents, the operations dashboard, the KPI page and the weekly summaries
(``docs/screens.md``). Each view checks its own permission (403 otherwise)."""

from django.urls import path

from reviews import dashboard_views, incident_views, kpi_views, summary_views, workspace_views

urlpatterns = [
    # The review workspace (reviewer; customer service reads).
    path("reviews/", workspace_views.queue_page, name="reviews"),
    path("reviews/<int:case_id>/", workspace_views.case_page, name="review_case"),
    path("incidents/", incident_views.incidents_page, name="incidents"),
    # The operations dashboard (ops_admin): its figures refresh through htmx.
    path("dashboard/", dashboard_views.dashboard, name="dashboard"),
    path("kpis/", kpi_views.kpis_page, name="kpis"),
    path("summaries/", summary_views.summaries_page, name="summaries"),
    path("summaries/latest/", summary_views.latest_summary_page, name="summary-latest"),
    path("summaries/<str:week>/", summary_views.summary_page, name="summary"),
]
