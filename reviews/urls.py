"""The human layer's screens, with the admin's look, under ``/admin/work/`` (``reviews.views``
and its neighbours): the review workspace, incidents, the operations dashboard, the KPI page
and the weekly summaries. Each view checks its own permission (403 otherwise)."""

from django.urls import path

from reviews import workspace_views

urlpatterns: list = [
    # The review workspace (reviews.workspace_views).
    path("reviews/", workspace_views.queue_page, name="reviews"),
    path("reviews/<int:case_id>/", workspace_views.case_page, name="review_case"),
]
