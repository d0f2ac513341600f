"""The project's URLs plus the outbox API and admin, for tests that run before they are wired
into ``config.urls`` (``pytest.mark.urls("tests.fulfillment.outbox.urls")``)."""

from django.contrib import admin
from django.urls import include, path

import fulfillment.outbox.admin  # noqa: F401  (registered before the admin's URLs are built)
from config import urls as project

api_v1 = [*project.api_v1, path("", include("fulfillment.outbox.api"))]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    *(p for p in project.urlpatterns if str(p.pattern) not in ("admin/", "api/v1/")),
]
