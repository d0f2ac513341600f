"""Admin screens of the outbox: outbound actions (read-only, with "Retry dead actions"),
circuit breakers (read-only) and the local WMS's pick tasks.

Actions are never added or deleted by hand: they are written by the state changes that cause
them, and a dead one is retried (one click) rather than edited.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from config.admin_mixins import ReadOnlyAdminMixin
from fulfillment.models import CircuitBreaker, OutboundAction, PickTask
from fulfillment.outbox.services import action_retry_dead
from orders import personal_data
from orders.actors import Actor
from orders.errors import DomainError


def _pretty(value: Any) -> str:
    return format_html(
        '<pre style="white-space:pre-wrap;margin:0">{}</pre>',
        json.dumps(value, indent=2, sort_keys=True, default=str),
    )


@admin.register(OutboundAction)
class OutboundActionAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "target", "status", "attempts_of", "next_attempt_at",
                    "order_link", "last_error_short", "updated_at"]  # fmt: skip
    list_filter = ["status", "kind", "target", "lane"]
    search_fields = ["=id", "=order__external_id", "idempotency_key", "=correlation_id"]
    list_select_related = ["order"]
    date_hierarchy = "created_at"
    actions = ["retry_dead"]
    fields = readonly_fields = (
        "order_link", "kind", "target", "version", "idempotency_key", "lane", "status",
        "attempts", "max_attempts", "next_attempt_at", "lease_expires_at", "last_error",
        "payload_pretty", "result_pretty", "correlation_id", "created_at", "updated_at",
        "completed_at",
    )  # fmt: skip

    RAW = ("payload_pretty", "result_pretty")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # What was sent and what the vendor answered are raw payloads: orders.view_raw_payload.
        if personal_data.sees_raw_payloads(request.user):
            return self.fields
        return [name for name in self.fields if name not in self.RAW]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The list's retry action needs "change"; a single action's page is read-only.
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="Attempts")
    def attempts_of(self, obj: OutboundAction) -> str:
        return f"{obj.attempts}/{obj.max_attempts}"

    @admin.display(description="Order", ordering="order__external_id")
    def order_link(self, obj: OutboundAction) -> str:
        order = obj.order  # None without a query when there is no order
        if order is None:
            return "—"
        url = reverse("admin:orders_order_change", args=[order.pk])
        return format_html('<a href="{}">{}</a>', url, order.external_id)

    @admin.display(description="Last error")
    def last_error_short(self, obj: OutboundAction) -> str:
        text = obj.last_error or ""
        return text if len(text) <= 80 else text[:79] + "…"

    @admin.display(description="Payload")
    def payload_pretty(self, obj: OutboundAction) -> str:
        return _pretty(obj.payload)

    @admin.display(description="Result")
    def result_pretty(self, obj: OutboundAction) -> str:
        return _pretty(obj.result)

    @admin.action(description="Retry dead actions", permissions=["change"])
    def retry_dead(self, request: HttpRequest, queryset: QuerySet[OutboundAction]) -> None:
        actor = Actor.for_user(request.user)
        for action_id in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                action = action_retry_dead(action_id=action_id, actor=actor)
            except DomainError as exc:
                self.message_user(request, f"Action {action_id}: {exc}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"Action {action_id} ({action.kind} -> {action.target}): revived, "
                "dispatching again.",
                messages.SUCCESS,
            )


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Per downstream system: open means its actions wait until ``retry at``."""

    list_display = readonly_fields = (
        "target", "state", "consecutive_failures", "opened_at", "retry_at", "updated_at",
    )  # fmt: skip
    list_filter = ["state"]


@admin.register(PickTask)
class PickTaskAdmin(admin.ModelAdmin):
    """The built-in WMS's pick lists; warehouse staff move them on (picked, packed)."""

    list_display = ["id", "order", "warehouse", "status", "line_count", "created_at"]
    list_editable = ["status"]
    list_filter = ["status", "warehouse"]
    search_fields = ["=order__external_id", "idempotency_key"]
    list_select_related = ["order", "warehouse"]
    fields = ["idempotency_key", "order", "warehouse", "status", "lines_pretty", "created_at",
              "updated_at"]  # fmt: skip
    readonly_fields = ["idempotency_key", "order", "warehouse", "lines_pretty", "created_at",
                       "updated_at"]  # fmt: skip

    @admin.display(description="Lines")
    def line_count(self, obj: PickTask) -> int:
        return len(obj.lines or [])

    @admin.display(description="Lines")
    def lines_pretty(self, obj: PickTask) -> str:
        return _pretty(obj.lines)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
