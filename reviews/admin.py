"""Admin for the review queue and the fraud score's settings.

Cases are read-only forms; they move only through the list actions, which call the same services
as the API and say in words why a move was refused. Rejecting and escalating take the text typed
in the "Reason / note" box next to the action menu.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from orders.actors import Actor
from orders.errors import DomainError
from reviews.models import PERM_REVIEW, UNRESOLVED, FraudSettings, ReviewCase
from reviews.services import (
    review_case_approve,
    review_case_escalate,
    review_case_reject,
    review_case_start,
)


class ReviewActionForm(ActionForm):
    note = forms.CharField(
        required=False, label="Reason / note",
        help_text="Needed to reject (the reason) or escalate (a note for the next person).",
    )  # fmt: skip


class OverdueFilter(admin.SimpleListFilter):
    title = "SLA"
    parameter_name = "sla"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("overdue", "Overdue"), ("due", "Within SLA")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ReviewCase]) -> Any:
        now = timezone.now()
        if self.value() == "overdue":
            return queryset.filter(status__in=UNRESOLVED, sla_due_at__lt=now)
        if self.value() == "due":
            return queryset.filter(status__in=UNRESOLVED, sla_due_at__gte=now)
        return queryset


class UnresolvedFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("unresolved", "Needs a person"), ("decided", "Decided")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ReviewCase]) -> Any:
        if self.value() == "unresolved":
            return queryset.filter(status__in=UNRESOLVED)
        if self.value() == "decided":
            return queryset.exclude(status__in=UNRESOLVED)
        return queryset


@admin.register(ReviewCase)
class ReviewCaseAdmin(admin.ModelAdmin):
    list_display = ["id", "order_link", "status", "score", "reasons_short", "assignee", "sla_due",
                    "created_at"]  # fmt: skip
    list_filter = [UnresolvedFilter, "status", OverdueFilter, "assignee", "order__channel"]
    search_fields = ["=order__external_id", "=id"]
    list_select_related = ["order", "order__channel", "assignee"]
    list_per_page = 50
    ordering = ["sla_due_at", "id"]
    action_form = ReviewActionForm
    actions = ["start_cases", "approve_cases", "reject_cases", "escalate_cases"]
    # A tuple of plain names: the same value then types as both ``fields`` and the read-only list.
    fields = (
        "order_link", "status", "score", "reasons_list", "signals_table", "assignee", "sla_due",
        "decided_by", "decided_at", "decision_note", "created_at",
    )  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # cases are opened by the pipeline

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # decisions go through the actions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERM_REVIEW)

    @admin.display(description="Order", ordering="order__external_id")
    def order_link(self, case: ReviewCase) -> str:
        url = reverse("admin:orders_order_change", args=[case.order_id])
        return format_html('<a href="{}">{}</a> ({})', url, case.order.external_id,
                           case.order.get_status_display())  # fmt: skip

    @admin.display(description="Reasons")
    def reasons_short(self, case: ReviewCase) -> str:
        text = "; ".join(case.reasons or [])
        return text if len(text) <= 120 else text[:117] + "..."

    @admin.display(description="Reasons")
    def reasons_list(self, case: ReviewCase) -> str:
        return format_html_join("", "<div>{}</div>", ((r,) for r in case.reasons or [])) or "-"

    @admin.display(description="Score breakdown")
    def signals_table(self, case: ReviewCase) -> str:
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((s.get("name"), s.get("weight"), s.get("evidence")) for s in case.signals or []),
        )  # fmt: skip
        if not rows:
            return "-"
        return format_html(
            "<table><tr><th>Signal</th><th>Weight</th><th>Evidence</th></tr>{}</table>", rows
        )

    @admin.display(description="SLA due", ordering="sla_due_at")
    def sla_due(self, case: ReviewCase) -> str:
        when = timezone.localtime(case.sla_due_at).strftime("%Y-%m-%d %H:%M")
        if case.is_overdue:
            return format_html('<strong style="color:#ba2121">{} (overdue)</strong>', when)
        return when

    def _run(
        self, request: HttpRequest, queryset: QuerySet[ReviewCase], verb: str,
        call: Callable[[int, Actor], ReviewCase],
    ) -> None:  # fmt: skip
        actor = Actor.for_user(request.user)
        done = []
        for case_id in queryset.values_list("pk", flat=True):
            try:
                call(case_id, actor)
            except DomainError as exc:
                self.message_user(request, f"Case {case_id}: {exc}", messages.ERROR)
            else:
                done.append(str(case_id))
        if done:
            self.message_user(request, f"{verb}: case(s) {', '.join(done)}", messages.SUCCESS)

    def _note(self, request: HttpRequest) -> str:
        return (request.POST.get("note") or "").strip()

    @admin.action(description="Start reviewing (assign to me)", permissions=["review"])
    def start_cases(self, request: HttpRequest, queryset: QuerySet[ReviewCase]) -> None:
        self._run(
            request,
            queryset,
            "Started",
            lambda cid, actor: review_case_start(case_id=cid, actor=actor),
        )

    @admin.action(description="Approve: the order goes on to allocation", permissions=["review"])
    def approve_cases(self, request: HttpRequest, queryset: QuerySet[ReviewCase]) -> None:
        note = self._note(request)
        self._run(
            request,
            queryset,
            "Approved",
            lambda cid, actor: review_case_approve(case_id=cid, actor=actor, note=note),
        )

    @admin.action(description="Reject: cancel the order (needs a reason)", permissions=["review"])
    def reject_cases(self, request: HttpRequest, queryset: QuerySet[ReviewCase]) -> None:
        reason = self._note(request)
        if not reason:
            self.message_user(request, "Rejecting needs a reason: type it in the 'Reason / note' "
                              "box next to the action.", messages.ERROR)  # fmt: skip
            return
        self._run(
            request,
            queryset,
            "Rejected (orders cancelled)",
            lambda cid, actor: review_case_reject(case_id=cid, actor=actor, reason=reason),
        )

    @admin.action(description="Escalate to a senior reviewer (needs a note)",
                  permissions=["review"])  # fmt: skip
    def escalate_cases(self, request: HttpRequest, queryset: QuerySet[ReviewCase]) -> None:
        note = self._note(request)
        if not note:
            self.message_user(request, "Escalating needs a note: type it in the 'Reason / note' "
                              "box next to the action.", messages.ERROR)  # fmt: skip
            return
        self._run(
            request,
            queryset,
            "Escalated",
            lambda cid, actor: review_case_escalate(case_id=cid, actor=actor, note=note),
        )


@admin.register(FraudSettings)
class FraudSettingsAdmin(admin.ModelAdmin):
    fieldsets = [
        ("Review routing", {"fields": [
            "review_threshold", ("high_value_amount", "high_value_currency"),
            "always_review_international", "always_review_high_value",
            "always_review_first_time_mismatch",
        ]}),
        ("Thresholds", {"fields": ["value_multiplier", "channel_median_min_orders",
                                   "unusual_quantity", "velocity_limit"]}),
        ("Signal weights", {"fields": [
            "weight_country_mismatch", "weight_name_mismatch", "weight_first_time_customer",
            "weight_customer_history", "weight_channel_median", "weight_international",
            "weight_high_value", "weight_unusual_quantity", "weight_disposable_email",
            "weight_velocity_email", "weight_velocity_card", "weight_velocity_ip",
            "weight_channel_risk_high", "weight_channel_risk_medium", "weight_avs_mismatch",
            "weight_cvv_mismatch",
        ]}),
    ]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one row, created on first use

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # One row: the list is its edit page.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        row = FraudSettings.load()
        return HttpResponseRedirect(reverse("admin:reviews_fraudsettings_change", args=[row.pk]))
