"""Admin building blocks every app shares (``config`` imports no app, only Django)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """A record the system keeps (an audit event, an inbox delivery, a stock level, a routing
    decision, a breaker): shown to those who may view it, never typed in, edited or deleted
    here; it changes only through its services."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
