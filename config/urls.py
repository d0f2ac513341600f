from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config.docs import DocsView, SchemaView
from config.health import healthz, metrics_view, readyz

admin.site.site_header = "Order automation back office"
admin.site.site_title = "Order back office"
admin.site.index_title = "Operations"

handler404 = "config.api.page_not_found"

api_v1 = [
    path("", include("orders.api")),
    path("", include("orders.refunds_api")),
    path("", include("channels.api")),
    path("", include("fulfillment.api")),
    path("", include("fulfillment.returns_api")),
    path("", include("fulfillment.outbox.api")),
    path("", include("reviews.api")),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/privacy-exports/", include("orders.urls")),
    # The finance screens (reconciliation.views), before the admin's own catch-all.
    path(
        "admin/reconciliation/finance/",
        include(("reconciliation.urls", "finance"), namespace="finance"),
    ),
    # The review workspace, incidents, dashboard, KPIs and weekly summaries (reviews.urls).
    path("admin/work/", include(("reviews.urls", "work"), namespace="work")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(url_name="schema"), name="api-docs"),
    # Before the channels' ``webhooks/<slug>/``: carriers have their own endpoints.
    path("webhooks/carriers/", include("fulfillment.urls")),
    path("webhooks/", include("channels.urls")),
    path("feeds/", include("fulfillment.feeds")),
    path("status/", include("fulfillment.status_urls")),  # the customer's order status page
    path("metrics", metrics_view, name="metrics"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]
