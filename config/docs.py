"""The OpenAPI schema (/api/schema/) and Swagger UI (/api/docs/), open to anyone or, with
``API_DOCS_PUBLIC=false`` (production), to signed-in users and API tokens only."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework import exceptions, permissions
from rest_framework.request import Request
from rest_framework.response import Response


class ApiDocsPermission(permissions.BasePermission):
    """Anyone while ``API_DOCS_PUBLIC``; otherwise any authenticated user (token or session)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(settings.API_DOCS_PUBLIC or (request.user and request.user.is_authenticated))


class SchemaView(SpectacularAPIView):
    """The schema: 401 for an anonymous caller when the docs are not public."""

    permission_classes = [ApiDocsPermission]


class DocsView(SpectacularSwaggerView):
    """Swagger UI: a person who is not signed in is sent to the sign-in page and back."""

    permission_classes = [ApiDocsPermission]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            return redirect_to_login(self.request.get_full_path())  # type: ignore[return-value]
        return super().handle_exception(exc)
