from __future__ import annotations

import json
import secrets
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.admin_mixins import ReadOnlyAdminMixin, errors_html, first_error_text
from fulfillment import returns
from fulfillment.carrier_events import REPLAY_PERMISSION, VIEW_RAW_PAYLOAD, carrier_event_replay
from fulfillment.carriers import trusted_label_url
from fulfillment.carriers.base import CarrierError
from fulfillment.models import (
    PERM_RETURN,
    CarrierInboundEvent,
    CarrierInboundStatus,
    ItemCondition,
    OutboundAction,
    ReorderPoint,
    Reservation,
    Return,
    ReturnChannel,
    ReturnLine,
    ReturnPolicy,
    ReturnReason,
    ReturnResolution,
    ReturnStatus,
    Shipment,
    ShipmentLine,
    StockLevel,
    TrackingEvent,
    Warehouse,
)
from fulfillment.replenishment import replenishment_suggestions, suggestions_csv
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipment_void
from fulfillment.status_page import status_url
from orders import personal_data
from orders.actors import Actor
from orders.admin import register_order_inline, register_order_panel
from orders.errors import DomainError
from orders.models import Order


@admin.register(Warehouse)
class WarehouseAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "country", "region", "kind", "priority",
                    "ships_international", "is_active", "cutoff_time", "time_zone"]  # fmt: skip
    list_filter = ["kind", "country", "ships_international", "is_active"]
    search_fields = ["code", "name", "region"]
    ordering = ["priority", "code"]


@admin.register(StockLevel)
class StockLevelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read the numbers here; change them with ``import_stock`` or ``stock_restock`` (a
    conditional update that never goes below what is reserved)."""

    list_display = ["sku", "warehouse", "on_hand", "reserved", "available", "updated_at"]
    change_list_template = "admin/fulfillment/stocklevel/change_list.html"  # the link to reorder
    list_filter = ["warehouse"]
    search_fields = ["sku"]
    list_select_related = ["warehouse"]
    readonly_fields = ["sku", "warehouse", "on_hand", "reserved", "updated_at"]

    @admin.display(description="Available")
    def available(self, obj: StockLevel) -> int:
        return obj.available


@admin.register(ReorderPoint)
class ReorderPointAdmin(admin.ModelAdmin):
    """Reorder points per SKU and warehouse (empty reorder point: computed from velocity), and
    the replenishment suggestions screen (``suggestions/``, also linked from Stock levels)."""

    list_display = ["sku", "warehouse", "reorder_point", "lead_time_days", "safety_days",
                    "order_up_to", "min_order_qty", "updated_at"]  # fmt: skip
    list_filter = ["warehouse"]
    search_fields = ["sku", "notes"]
    list_select_related = ["warehouse"]
    change_list_template = "admin/fulfillment/reorderpoint/change_list.html"

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.suggestions_view)
        return [path("suggestions/", view, name="fulfillment_replenishment"),
                *super().get_urls()]  # fmt: skip

    def suggestions_view(self, request: HttpRequest) -> HttpResponse:
        """What to reorder now, most urgent first, with the reasons; ``?format=csv``."""
        if not request.user.has_perm("fulfillment.view_stocklevel"):
            raise PermissionDenied
        warehouse = request.GET.get("warehouse") or None
        suggestions = replenishment_suggestions(warehouse_code=warehouse)
        if request.GET.get("format") == "csv":
            response = HttpResponse(suggestions_csv(suggestions), content_type="text/csv")
            response["Content-Disposition"] = 'attachment; filename="replenishment.csv"'
            return response
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Replenishment suggestions",
            "suggestions": suggestions,
            "warehouses": Warehouse.objects.filter(is_active=True).order_by("code"),
            "warehouse": warehouse or "",
            "window_days": settings.REPLENISHMENT_VELOCITY_DAYS,
        }
        return TemplateResponse(request, "admin/fulfillment/replenishment.html", context)


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "order", "sku", "warehouse", "quantity", "status", "expires_at",
                    "created_at"]  # fmt: skip
    list_filter = ["status", "warehouse"]
    search_fields = ["sku", "order__external_id"]
    list_select_related = ["order", "warehouse"]
    readonly_fields = ["order", "order_line", "warehouse", "sku", "quantity", "status",
                       "expires_at", "created_at", "released_at", "consumed_at"]  # fmt: skip
    raw_id_fields = ["order", "order_line"]


def without_labels(request: HttpRequest, names: Any) -> list[str]:
    """``names`` (admin fields or columns) as ``request``'s user may see them: without the
    label and with the flags minus the label's link, unless they see contact details."""
    if personal_data.sees_contact_details(request.user):
        return list(names)
    return [{"flags": "flags_"}.get(n, n) for n in names if n != "label_link"]


class ShipmentLineInline(admin.TabularInline):
    model = ShipmentLine
    fields = readonly_fields = ("order_line", "sku", "quantity", "reservation")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class TrackingEventInline(admin.TabularInline):
    """Every carrier event of the parcel, oldest first, and what it did to the shipment."""

    model = TrackingEvent
    fields = readonly_fields = (
        "occurred_at", "status", "carrier_status", "carrier_detail", "message", "location",
        "source", "effect", "inbound_link",
    )  # fmt: skip
    ordering = ("occurred_at", "id")
    extra = 0
    can_delete = False
    verbose_name_plural = "Tracking events"

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.display(description="Webhook")
    def inbound_link(self, event: TrackingEvent) -> str:
        if event.inbound_id is None:
            return "—"
        url = reverse("admin:fulfillment_carrierinboundevent_change", args=[event.inbound_id])
        return format_html('<a href="{}">#{}</a>', url, event.inbound_id)


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    """Parcels: buy the label, hand over to the carrier, or void one that has not left; what
    the carrier says about it (tracking fields, and every event inline)."""

    list_display = ["id", "order", "warehouse", "status", "tracking_status", "carrier",
                    "service_level", "tracking_number", "label_link", "last_event_at",
                    "created_at"]  # fmt: skip
    list_filter = ["status", "tracking_status", "carrier", "warehouse"]
    search_fields = ["tracking_number", "order__external_id"]
    list_select_related = ["order", "warehouse"]
    inlines = [ShipmentLineInline, TrackingEventInline]
    fields = readonly_fields = (
        "order", "warehouse", "status", "carrier", "service_level", "tracking_number",
        "tracking_url", "rate_amount", "rate_currency", "flags", "label_link", "created_at",
        "shipped_at", "delivered_at", "tracking_status", "carrier_status", "carrier_name",
        "estimated_delivery_from", "estimated_delivery_until", "last_event_at",
        "last_tracked_at", "channel_ref",
    )  # fmt: skip
    actions = ["buy_labels", "ship_selected", "void_selected"]

    # A label prints the street address and phone: without orders.view_contact_details neither
    # the label nor the carrier's link to it (in flags) is offered.
    def get_list_display(self, request: HttpRequest) -> Any:
        return without_labels(request, self.list_display)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return without_labels(request, self.fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return without_labels(request, self.readonly_fields)

    @admin.display(description="Flags")
    def flags_(self, shipment: Shipment) -> str:
        shown = {k: v for k, v in (shipment.flags or {}).items() if k != "label_url"}
        return json.dumps(shown, sort_keys=True, default=str)

    def has_add_permission(self, request: Any) -> bool:
        return False  # shipments are planned from reservations (services), never typed in

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        label = self.admin_site.admin_view(self.label_view)
        return [path("<int:pk>/label/", label, name="fulfillment_shipment_label"),
                *super().get_urls()]  # fmt: skip

    def label_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        shows_contact = personal_data.sees_contact_details(request.user)
        if not self.has_view_permission(request) or not shows_contact:
            raise PermissionDenied
        shipment = get_object_or_404(Shipment, pk=pk)
        if not shipment.label_pdf:
            raise PermissionDenied("This shipment has no label yet")
        response = HttpResponse(bytes(shipment.label_pdf), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="label-{shipment.tracking_number}.pdf"'
        return response

    @admin.display(description="Label")
    def label_link(self, shipment: Shipment) -> str:
        if not shipment.label_pdf:
            hosted = (shipment.flags or {}).get("label_url")
            if not hosted:
                return "-"
            if trusted_label_url(shipment.carrier, hosted):
                return format_html(
                    '<a href="{}" target="_blank" rel="noopener noreferrer">carrier label</a>',
                    hosted,
                )
            # Not https on the carrier's own label hosts (a javascript: URL, another host):
            # shown as text for a person to look at, never as something to click.
            return format_html(
                "{} (not a link: not https on {}'s label hosts)", hosted, shipment.carrier
            )
        url = reverse("admin:fulfillment_shipment_label", args=[shipment.pk])
        return format_html('<a href="{}" target="_blank">4x6 PDF</a>', url)

    def _apply(self, request: HttpRequest, queryset: QuerySet[Shipment], verb: str,
               call: Any) -> None:  # fmt: skip
        if not request.user.has_perm("fulfillment.change_shipment"):
            raise PermissionDenied
        actor = Actor.for_user(request.user)
        for shipment in queryset:
            try:
                call(shipment_id=shipment.pk, actor=actor)
                self.message_user(request, f"Shipment {shipment.pk}: {verb}.", messages.SUCCESS)
            except (DomainError, CarrierError) as exc:
                self.message_user(request, f"Shipment {shipment.pk}: {exc}", messages.ERROR)

    @admin.action(description="Buy labels", permissions=["change"])
    def buy_labels(self, request: HttpRequest, queryset: QuerySet[Shipment]) -> None:
        self._apply(request, queryset, "label bought", shipment_buy_label)

    @admin.action(description="Mark handed to the carrier (ship)", permissions=["change"])
    def ship_selected(self, request: HttpRequest, queryset: QuerySet[Shipment]) -> None:
        self._apply(request, queryset, "shipped", shipment_ship)

    @admin.action(description="Void (not left yet)", permissions=["change"])
    def void_selected(self, request: HttpRequest, queryset: QuerySet[Shipment]) -> None:
        self._apply(request, queryset, "voided", shipment_void)


@admin.register(CarrierInboundEvent)
class CarrierInboundEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The carriers' inbox: every signed carrier webhook, what processing made of it, and a
    replay for the quarantined ones. The body only for those who may view raw carrier
    payloads (it can name who signed for the parcel)."""

    list_display = ["id", "received_at", "carrier", "topic", "status", "tracking_number",
                    "shipment_link", "problem", "duplicate_deliveries", "attempts"]  # fmt: skip
    list_filter = ["status", "carrier", "topic"]
    search_fields = ["=tracking_number", "=dedup_key", "=correlation_id"]
    date_hierarchy = "received_at"
    actions = ["replay"]
    fields = readonly_fields = (
        "carrier", "topic", "status", "outcome", "error_list", "tracking_number",
        "shipment_link", "dedup_key", "correlation_id", "received_at", "processed_at",
        "attempts", "duplicate_deliveries", "last_delivery_at", "body_preview",
    )  # fmt: skip
    RAW_FIELDS = ("body_preview",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if request.user.has_perm(VIEW_RAW_PAYLOAD):
            return self.fields
        return [name for name in self.fields if name not in self.RAW_FIELDS]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REPLAY_PERMISSION)

    @admin.display(description="Shipment")
    def shipment_link(self, event: CarrierInboundEvent) -> str:
        if event.shipment_id is None:
            return "—"
        url = reverse("admin:fulfillment_shipment_change", args=[event.shipment_id])
        return format_html('<a href="{}">#{}</a>', url, event.shipment_id)

    @admin.display(description="Problem or outcome")
    def problem(self, event: CarrierInboundEvent) -> str:
        return first_error_text(event.errors) or event.outcome

    @admin.display(description="Errors")
    def error_list(self, event: CarrierInboundEvent) -> str:
        return errors_html(event.errors)

    @admin.display(description="Body (first 4 KB)")
    def body_preview(self, event: CarrierInboundEvent) -> str:
        raw = bytes(event.body or b"")
        if not raw:
            return "— (purged)"
        text = raw[:4096].decode("utf-8", errors="replace")
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", text)

    @admin.action(description="Replay selected quarantined carrier events", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[CarrierInboundEvent]) -> None:
        actor = Actor.for_user(request.user)
        for event_id, before in queryset.values_list("pk", "status"):
            try:
                event = carrier_event_replay(event_id=event_id, actor=actor)
            except DomainError as exc:
                self.message_user(request, f"Carrier event {event_id}: {exc}", messages.ERROR)
                continue
            if before != CarrierInboundStatus.QUARANTINED:
                self.message_user(
                    request, f"Carrier event {event_id} was not quarantined ({event.status}): "
                    "unchanged.", messages.INFO,
                )  # fmt: skip
            elif event.status == CarrierInboundStatus.QUARANTINED:
                self.message_user(
                    request, f"Carrier event {event_id} is still quarantined: "
                    f"{self.problem(event)}", messages.WARNING,
                )  # fmt: skip
            else:
                self.message_user(
                    request, f"Carrier event {event_id} {event.status}: {event.outcome}",
                    messages.SUCCESS,
                )  # fmt: skip


# Django autodiscovers ``fulfillment.admin`` only: the sub-domains' screens register from here.
# Routing rules (with the "try it on order N" preview) and decisions; the outbox's actions,
# circuit breakers and pick tasks.
from fulfillment.outbox import admin as outbox_admin  # noqa: E402, F401
from fulfillment.routing import admin as routing_admin  # noqa: E402, F401


# --- on the order's own page, through the extension point orders.admin offers ----------------
@register_order_inline
class OrderShipmentInline(admin.TabularInline):
    """The order's parcels: where from, state, carrier, tracking, label."""

    model = Shipment
    fields = readonly_fields = (
        "shipment_link", "warehouse", "status", "tracking_status", "carrier", "service_level",
        "tracking_number", "estimated_delivery_until", "label_link", "shipped_at",
        "delivered_at",
    )  # fmt: skip
    extra = 0
    can_delete = False
    verbose_name_plural = "Shipments"

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return without_labels(request, self.fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return without_labels(request, self.readonly_fields)

    @admin.display(description="Shipment")
    def shipment_link(self, shipment: Shipment) -> str:
        url = reverse("admin:fulfillment_shipment_change", args=[shipment.pk])
        return format_html('<a href="{}">#{}</a>', url, shipment.pk)

    label_link = ShipmentAdmin.label_link


@register_order_inline
class OrderOutboundActionInline(admin.TabularInline):
    """What was (or will be) sent downstream for the order, and whether it went through."""

    model = OutboundAction
    fields = readonly_fields = (
        "action_link", "kind", "target", "status", "attempts", "next_attempt_at", "last_error",
    )  # fmt: skip
    extra = 0
    can_delete = False
    verbose_name_plural = "Downstream actions (outbox)"

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.display(description="Action")
    def action_link(self, action: OutboundAction) -> str:
        url = reverse("admin:fulfillment_outboundaction_change", args=[action.pk])
        return format_html('<a href="{}">#{}</a>', url, action.pk)


@register_order_panel
def customer_status_link(request: HttpRequest, order: Order) -> str:
    """The customer's status page link, for customer service to send again or open."""
    url = status_url(order)
    days = settings.STATUS_LINK_MAX_AGE_DAYS
    return format_html(
        '<section class="lifecycle" aria-label="Customer status page"><h2>Customer status page'
        '</h2><p><a href="{}" target="_blank" rel="noopener noreferrer">{}</a></p>'
        '<p class="none">What the customer\'s emails link to (this link works for {} days). '
        "Send it to the customer only: it opens the order's status without a sign-in.</p>"
        "</section>",
        url, url, days,
    )  # fmt: skip


@admin.register(ReturnPolicy)
class ReturnPolicyAdmin(admin.ModelAdmin):
    """The return policy customers read on their status page (and that closes orders once the
    window has passed). A channel's own active policy wins over the shop-wide one."""

    list_display = ["name", "channel", "window_days", "is_active", "updated_at"]
    list_filter = ["is_active", "channel"]
    search_fields = ["name", "conditions", "how_to_start"]
    list_select_related = ["channel"]
    fieldsets = [
        (None, {"fields": ["name", "is_active", "channel"]}),
        ("What customers read", {"fields": ["window_days", "conditions", "how_to_start"]}),
        ("Handling", {"fields": ["excluded_reasons", "auto_authorize_limit"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]
    readonly_fields = ["created_at", "updated_at"]


# --- returns (RMA) -------------------------------------------------------------------------------
# A return moves only through ``fulfillment.returns`` (the same services as the API): each button
# on its page posts to ``act_view``, which calls the service and shows a refusal in words.
PERM_ADD_RETURN = "fulfillment.add_return"
# The buttons a state offers (the service still decides: a refusal comes back as a message).
RETURN_ACTIONS = {
    ReturnStatus.REQUESTED: ["authorize", "reject"],
    ReturnStatus.AUTHORIZED: ["receive", "refund", "reject"],
    ReturnStatus.RECEIVED: ["refund", "exchange"],
}


def return_actions(ret: Return) -> list[str]:
    """The actions open from the return's state and resolution."""
    names = list(RETURN_ACTIONS.get(ReturnStatus(ret.status), []))
    if ret.resolution == ReturnResolution.EXCHANGE or ret.refund_id is not None:
        names = [n for n in names if n != "refund"]
    if ret.resolution != ReturnResolution.EXCHANGE or ret.exchange_order_id is not None:
        names = [n for n in names if n != "exchange"]
    return names


def policy_verdict_words(ret: Return) -> str:
    verdict = ret.policy_verdict or {}
    if not verdict:
        return "not assessed"
    if verdict.get("auto"):
        return "The return policy authorizes it by itself."
    why = "; ".join(str(w) for w in verdict.get("why_not") or []) or "no reason given"
    return f"Needs customer service: {why}."


class ReturnLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ReturnLine
    extra = 0
    can_delete = False
    fields = readonly_fields = ("sku", "title", "quantity", "reason", "condition",
                                "restocked_quantity")  # fmt: skip

    @admin.display(description="Item")
    def title(self, line: ReturnLine) -> str:
        return line.order_line.title


@admin.register(Return)
class ReturnAdmin(admin.ModelAdmin):
    """Returns (RMA): authorize, reject, receive (a condition per line), refund or exchange."""

    list_display = ["rma_number", "order_link", "status", "lines_count", "value",
                    "requested_via", "requested_at"]  # fmt: skip
    list_filter = ["status", "requested_via", "resolution"]
    search_fields = ["=rma_number", "=order__external_id", "=order__order_number"]
    list_select_related = ["order", "refund"]
    date_hierarchy = "requested_at"
    inlines = [ReturnLineInline]
    change_form_template = "admin/fulfillment/return/change_form.html"
    fieldsets = [
        (None, {"fields": ["rma_number", "order_link", "status", "resolution", "requested_via",
                           "customer_note", "value", "warehouse"]}),
        ("Decision", {"fields": ["verdict", "auto_authorized", "decided_by", "decision_note"]}),
        ("Label", {"fields": ["label_link", "label_carrier", "tracking_number",
                              "tracking_status", "picked_up_at"]}),
        ("Settlement", {"fields": ["refund_link", "exchange_link"]}),
        ("Record", {"fields": ["requested_at", "authorized_at", "received_at", "refunded_at",
                               "closed_at", "correlation_id"]}),
    ]  # fmt: skip
    readonly_fields = flatten_fieldsets(fieldsets)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # The label prints the street address: without orders.view_contact_details no link.
        if personal_data.sees_contact_details(request.user):
            return self.fieldsets
        return [(name, {**options, "fields": [f if f != "label_link" else "label_hidden"
                                              for f in options["fields"]]})
                for name, options in self.fieldsets]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return flatten_fieldsets(self.get_fieldsets(request, obj))

    @admin.display(description="Return label")
    def label_hidden(self, ret: Return) -> str:
        return "not shown to your role (it prints the customer's address)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Return]:
        return super().get_queryset(request).defer("label_pdf").annotate(
            n_lines=Count("lines"))  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # started from the order's page ("Start a return"), the status page or API

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # moves only through the buttons

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Order", ordering="order__external_id")
    def order_link(self, ret: Return) -> str:
        url = reverse("admin:orders_order_change", args=[ret.order_id])
        return format_html('<a href="{}">{}</a>', url, ret.order.order_number
                           or ret.order.external_id)  # fmt: skip

    @admin.display(description="Lines", ordering="n_lines")
    def lines_count(self, ret: Return) -> int:
        return int(getattr(ret, "n_lines", None) or ret.lines.count())

    @admin.display(description="Value")
    def value(self, ret: Return) -> str:
        # Once refunded, what it came to; before, what its units would refund now.
        if ret.refund is not None:
            return f"{ret.refund.amount} {ret.refund.currency}"
        try:
            return f"{returns.return_value(ret)} {ret.order.currency}"
        except DomainError:
            return "-"  # its units were refunded otherwise (a channel's refund) meanwhile

    @admin.display(description="Policy verdict")
    def verdict(self, ret: Return) -> str:
        return policy_verdict_words(ret)

    @admin.display(description="Refund")
    def refund_link(self, ret: Return) -> str:
        refund = ret.refund
        if refund is None:
            return "-"
        url = reverse("admin:orders_refund_change", args=[refund.pk])
        return format_html('<a href="{}">{}</a> ({} {}, {})', url, refund.reference,
                           refund.amount, refund.currency, refund.get_status_display())  # fmt: skip

    @admin.display(description="Exchange order")
    def exchange_link(self, ret: Return) -> str:
        if ret.exchange_order_id is None:
            return "-"
        url = reverse("admin:orders_order_change", args=[ret.exchange_order_id])
        return format_html('<a href="{}">#{}</a>', url, ret.exchange_order_id)

    @admin.display(description="Return label")
    def label_link(self, ret: Return) -> str:
        has_pdf = Return.objects.filter(pk=ret.pk, label_pdf__isnull=False).exists()
        if has_pdf:
            url = reverse("admin:fulfillment_return_label", args=[ret.pk])
            return format_html('<a href="{}" target="_blank">Return label (PDF)</a>', url)
        if ret.label_url and trusted_label_url(ret.label_carrier, ret.label_url):
            return format_html('<a href="{}" target="_blank" rel="noopener noreferrer">carrier '
                               "label</a>", ret.label_url)  # fmt: skip
        return "no label yet" if ret.status == ReturnStatus.AUTHORIZED else "-"

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/label/", wrap(self.label_view), name="fulfillment_return_label"),
            path("<int:pk>/act/", wrap(self.act_view), name="fulfillment_return_act"),
            path("start/<int:order_id>/", wrap(self.start_view), name="fulfillment_return_start"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:  # fmt: skip
        extra_context = dict(extra_context or {})
        ret = self.get_object(request, object_id)
        if ret is not None:
            works = request.user.has_perm(PERM_RETURN)
            extra_context["return_actions"] = return_actions(ret) if works else []
            extra_context["return_lines"] = list(ret.lines.select_related("order_line"))
            extra_context["conditions"] = ItemCondition.choices
        return super().change_view(request, object_id, form_url, extra_context)

    def label_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        # The label prints the customer's address: only for those who see contact details.
        if not self.has_view_permission(request) or not personal_data.sees_contact_details(
                request.user):  # fmt: skip
            raise PermissionDenied
        ret = get_object_or_404(Return, pk=pk)
        if not ret.label_pdf:
            raise PermissionDenied("This return has no label yet")
        response = HttpResponse(bytes(ret.label_pdf), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="return-{ret.rma_number}.pdf"'
        return response

    def act_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm(PERM_RETURN):
            raise PermissionDenied
        ret = get_object_or_404(Return, pk=pk)
        back = reverse("admin:fulfillment_return_change", args=[ret.pk])
        if request.method != "POST":
            return HttpResponseRedirect(back)
        name = request.POST.get("action", "")
        actor = Actor.for_user(request.user)
        note = request.POST.get("note", "").strip()
        try:
            if name == "authorize":
                ret = returns.return_authorize(return_id=ret.pk, actor=actor, note=note)
            elif name == "reject":
                ret = returns.return_reject(return_id=ret.pk, actor=actor, note=note)
            elif name == "receive":
                conditions = {ln.pk: request.POST.get(f"condition-{ln.pk}", "")
                              for ln in ret.lines.all()}  # fmt: skip
                ret = returns.return_receive(return_id=ret.pk, actor=actor,
                                             conditions=conditions, note=note)  # fmt: skip
            elif name == "refund":
                ret = returns.return_refund(return_id=ret.pk, actor=actor)
            elif name == "exchange":
                ret = returns.return_exchange(return_id=ret.pk, actor=actor)
            else:
                self.message_user(request, f"Unknown action {name!r}", messages.ERROR)
                return HttpResponseRedirect(back)
        except DomainError as exc:
            self.message_user(request, f"Refused: {exc}", messages.ERROR)
        else:
            ret.refresh_from_db()
            self.message_user(request, f"{ret.rma_number}: {name} done (status "
                              f"{ret.get_status_display()}).", messages.SUCCESS)  # fmt: skip
        return HttpResponseRedirect(back)

    def start_view(self, request: HttpRequest, order_id: int) -> HttpResponse:
        """Customer service starts a return for a customer: units and a reason per line."""
        if not request.user.has_perm(PERM_ADD_RETURN):
            raise PermissionDenied
        order = get_object_or_404(Order, pk=order_id)
        left = returns.returnable_units(order.pk)
        lines = [(ln, left.get(ln.pk, 0)) for ln in order.lines.order_by("line_no")]
        if request.method == "POST":
            asked: list[returns.ReturnLineRequest] = []
            try:
                for ln, _units in lines:
                    raw = request.POST.get(f"quantity-{ln.pk}", "").strip() or "0"
                    quantity = int(raw)
                    if quantity:
                        asked.append(returns.ReturnLineRequest(
                            ln.pk, quantity, request.POST.get(f"reason-{ln.pk}", "")))  # fmt: skip
                ret = returns.return_request(
                    order_id=order.pk, lines=asked, via=ReturnChannel.ADMIN,
                    actor=Actor.for_user(request.user), note=request.POST.get("note", ""),
                    resolution=request.POST.get("resolution") or ReturnResolution.REFUND,
                    key=request.POST.get("key", ""),
                )  # fmt: skip
            except ValueError:
                self.message_user(request, "A quantity must be a whole number", messages.ERROR)
            except DomainError as exc:
                self.message_user(request, f"Refused: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{ret.rma_number} started (status "
                                  f"{ret.get_status_display()}).", messages.SUCCESS)  # fmt: skip
                return HttpResponseRedirect(
                    reverse("admin:fulfillment_return_change", args=[ret.pk]))  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "title": f"Start a return for order {order.order_number or order.external_id}",
            "order": order, "lines": lines, "reasons": ReturnReason.choices,
            "resolutions": ReturnResolution.choices, "opts": self.model._meta,
            "key": secrets.token_hex(8),
        }  # fmt: skip
        return TemplateResponse(request, "admin/fulfillment/return/start.html", context)


@register_order_panel
def order_returns_panel(request: HttpRequest, order: Order) -> str:
    """The order's returns (RMA, status, link) and, for customer service, "Start a return"."""
    if not request.user.has_perm("fulfillment.view_return"):
        return ""
    rows = [
        (reverse("admin:fulfillment_return_change", args=[ret.pk]), ret.rma_number,
         ret.get_status_display(), ret.lines.count())
        for ret in order.returns.defer("label_pdf").order_by("requested_at", "id")
    ]  # fmt: skip
    table = format_html(
        "<table><thead><tr><th>RMA</th><th>Status</th><th>Lines</th></tr></thead><tbody>{}"
        "</tbody></table>",
        format_html_join("", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td></tr>',
                         rows),
    ) if rows else format_html('<p class="none">{}</p>', "No returns.")  # fmt: skip
    start = ""
    if request.user.has_perm(PERM_ADD_RETURN) and any(returns.returnable_units(order.pk).values()):
        start = format_html('<p><a class="button" href="{}">Start a return</a></p>',
                            reverse("admin:fulfillment_return_start", args=[order.pk]))  # fmt: skip
    return format_html('<section class="lifecycle" aria-label="Returns"><h2>Returns</h2>{}{}'
                       "</section>", table, start)  # fmt: skip
