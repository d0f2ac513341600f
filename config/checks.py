"""Deployment checks of our own, run by ``manage.py check --deploy`` next to Django's: the
diagnostics that must not be open to anyone in production (docs/deployment.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

W001 = Warning(
    "/metrics answers anyone: METRICS_TOKEN (or METRICS_TOKEN_FILE) is not set.",
    hint="Set METRICS_TOKEN and give Prometheus `authorization: {credentials: <token>}`.",
    id="orderdesk.W001",
)
W002 = Warning(
    "/api/schema/ and /api/docs/ answer anyone: API_DOCS_PUBLIC is true.",
    hint="Set API_DOCS_PUBLIC=false: then a signed-in user or an API token is needed.",
    id="orderdesk.W002",
)


@register(Tags.security, deploy=True)
def check_diagnostics_are_not_public(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn while /metrics or the API schema and docs are open to anonymous callers."""
    found: list[CheckMessage] = []
    if not settings.METRICS_TOKEN:
        found.append(W001)
    if settings.API_DOCS_PUBLIC:
        found.append(W002)
    return found
