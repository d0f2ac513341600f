"""Admin for customer service, reviewers, finance and operations.

Orders are read-only forms: their state moves only through the transition buttons, each of which
calls ``order_transition`` (the same service as the API) and reports a refusal in words.

Other apps add to the order's page through ``register_order_inline`` and
``register_order_panel`` (see below), never by changing ``OrderAdmin``: orders imports no
other app, so the apps above it register themselves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.admin.utils import flatten_fieldsets
from django.core import checks
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from rest_framework.authtoken.admin import TokenAdmin as DrfTokenAdmin
from rest_framework.authtoken.models import TokenProxy

from config.admin_mixins import ReadOnlyAdminMixin
from orders import money, personal_data, refunds
from orders.actors import Actor
from orders.errors import DomainError
from orders.models import (
    Customer,
    Incident,
    Order,
    OrderEvent,
    OrderLine,
    Product,
    Refund,
    RefundLimit,
    RefundLine,
    RefundPayment,
    RefundStatus,
)
from orders.services import incident_transition, order_available_transitions, order_transition


def money_display(field_name: str, label: str) -> Any:
    """A read-only admin method (a ModelAdmin attribute) showing an amount as ``26.50 USD``.

    Django's admin would format a 4-decimal DecimalField as ``26.5000`` whatever the currency.
    """

    @admin.display(description=label, ordering=field_name)
    def show(model_admin: Any, obj: Any) -> str:
        return f"{getattr(obj, field_name)} {obj.currency}"

    return show


ADDRESS_LINES = [
    ("name",), ("company",), ("line1",), ("line2",), ("postal_code", "city"), ("region",),
    ("country_code",), ("phone",),
]  # fmt: skip


def format_address(address: dict[str, Any] | None) -> str:
    """An address as a person reads it, one line per part; '-' when there is none."""
    if not address:
        return "-"
    lines = []
    for keys in ADDRESS_LINES:
        parts = [str(address[k]) for k in keys if address.get(k)]
        if parts:
            lines.append(" ".join(parts))
    return format_html_join("", "{}<br>", ((line,) for line in lines)) or "-"


# Transitions that need more than a click, and what they ask for.
TRANSITION_INPUTS = {"hold": "reason", "cancel": "reason", "refund_partially": "amount"}
DANGEROUS = {"cancel", "refund", "refund_partially"}


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    # Tuples: mypy reads a list literal here as the wider type of ``fields`` (nested groups
    # allowed), which ``readonly_fields`` (names only) does not accept.
    fields = readonly_fields = (
        "line_no", "sku", "channel_sku_", "variant_", "title", "quantity", "unit_price_",
        "discount_", "tax_",
    )  # fmt: skip
    unit_price_ = money_display("unit_price", "Unit price")
    discount_ = money_display("discount_allocation", "Discount")
    tax_ = money_display("tax_allocation", "Tax")

    # What the channel sent: an unmapped line has no ``sku`` and is known only by these.
    @admin.display(description="Channel SKU")
    def channel_sku_(self, line: OrderLine) -> str:
        return line.channel_sku

    @admin.display(description="Variant")
    def variant_(self, line: OrderLine) -> str:
        return line.variant_ref

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrderEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderEvent
    verbose_name = "timeline event"
    verbose_name_plural = "Timeline"
    extra = 0
    can_delete = False
    ordering = ["at", "id"]
    fields = readonly_fields = ("at", "actor", "action", "change", "summary", "correlation_id")

    @admin.display(description="Actor")
    def actor(self, event: OrderEvent) -> str:
        return (
            f"{event.get_actor_kind_display()}: {event.actor_id}"
            if event.actor_id
            else (event.get_actor_kind_display())
        )

    @admin.display(description="Change")
    def change(self, event: OrderEvent) -> str:
        if event.from_state or event.to_state:
            return f"{event.field or 'status'}: {event.from_state or '—'} → {event.to_state}"
        return ""

    @admin.display(description="Details")
    def summary(self, event: OrderEvent) -> str:
        data = event.data or {}
        if event.action == "check":
            text = f"{data.get('check')}: {data.get('outcome')}"
            if data.get("message"):
                text += f" ({data['message']})"
            return text
        # A summary for everyone: the parts of a snapshot that hold personal data never show.
        shown = personal_data.snapshot_redacted(data)
        return ", ".join(
            f"{k}={v}"
            for k, v in shown.items()
            if not isinstance(v, dict | list) and v != personal_data.REDACTED
        )


# --- extension point: the order's change page -------------------------------------------------
# An app above orders (fulfillment: shipments, downstream actions) shows its rows for an order
# on the order's page by registering an inline from its own admin module. The inlines appear
# after the order's own (lines, timeline), in registration order.
_EXTRA_ORDER_INLINES: list[type[InlineModelAdmin]] = []


def register_order_inline(inline: type[InlineModelAdmin]) -> type[InlineModelAdmin]:
    """Show ``inline`` (an InlineModelAdmin of a model with a foreign key to ``Order``) on the
    order's change page. Registering the same inline again is a no-op; usable as a decorator."""
    if inline not in _EXTRA_ORDER_INLINES:
        _EXTRA_ORDER_INLINES.append(inline)
    return inline


def registered_order_inlines() -> list[type[InlineModelAdmin]]:
    """The inlines other apps registered for the order's page, in registration order."""
    return list(_EXTRA_ORDER_INLINES)


# A panel: a few lines of HTML an app above orders shows at the top of the order's page (below
# the Lifecycle panel), such as the customer's status page link. ``panel(request, order)``
# returns safe HTML (``format_html``), or "" to show nothing for this order or this user.
OrderPanel = Callable[[HttpRequest, Order], str]
_ORDER_PANELS: list[OrderPanel] = []


def register_order_panel(panel: OrderPanel) -> OrderPanel:
    """Show ``panel(request, order)`` on the order's change page, in registration order.
    Registering the same panel again is a no-op; usable as a decorator."""
    if panel not in _ORDER_PANELS:
        _ORDER_PANELS.append(panel)
    return panel


def order_panels(request: HttpRequest, order: Order) -> list[str]:
    """The registered panels' HTML for this order and this user (empty ones left out)."""
    return [html for panel in _ORDER_PANELS if (html := panel(request, order))]


@checks.register(checks.Tags.admin)
def check_registered_order_inlines(**kwargs: Any) -> list[checks.CheckMessage]:
    """Django's admin checks see only ``OrderAdmin.inlines``: run the same checks on the
    registered ones, so a broken inline fails ``manage.py check``, not a person's page."""
    return [error for inline in registered_order_inlines()
            for error in inline(Order, admin.site).check()]  # fmt: skip


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["external_id", "channel", "status_badge", "payment_status", "amount",
                    "ship_to_country", "placed_at"]  # fmt: skip
    list_filter = ["status", "payment_status", "channel", "placed_at"]
    search_fields = ["=external_id", "customer__email"]
    date_hierarchy = "placed_at"
    list_select_related = ["channel", "customer"]
    list_per_page = 50
    inlines = [OrderLineInline, OrderEventInline]
    change_form_template = "admin/orders/order/change_form.html"
    fieldsets = [
        (None, {"fields": ["external_id", "channel", "customer", "status", "payment_status",
                           "status_reason", "placed_at", "correlation_id"]}),
        ("Amounts", {"fields": ["subtotal_", "discount_", "shipping_", "tax_", "amount",
                                "refunded_", "payment_method"]}),
        ("Addresses", {"fields": ["ship_to_country", "ship_to", "bill_to", "address_verdict"]}),
        ("Risk", {"fields": ["risk_score", "risk_breakdown", "review_approved_at"]}),
    ]  # fmt: skip

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> list[type[InlineModelAdmin]]:
        # Read per request, so an app's admin module may register after this one loaded.
        return [*self.inlines, *registered_order_inlines()]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # Without orders.view_contact_details the addresses show without street and phone.
        if personal_data.sees_contact_details(request.user):
            return self.fieldsets
        swap = {"ship_to": "ship_to_area", "bill_to": "bill_to_area"}
        return [
            (name, {**options, "fields": [swap.get(f, f) if isinstance(f, str) else f
                                          for f in options["fields"]]})
            for name, options in self.fieldsets
        ]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Everything: the state fields are protected, amounts come from the channel.
        return flatten_fieldsets(self.get_fieldsets(request, obj))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders come from channels (or ingest_file), never typed in

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the audit trail must stay whole

    @admin.display(description="Status", ordering="status")
    def status_badge(self, order: Order) -> str:
        return format_html('<span class="order-status s-{}">{}</span>', order.status,
                           order.get_status_display())  # fmt: skip

    @admin.display(description="Ship to")
    def ship_to(self, order: Order) -> str:
        return format_address(order.shipping_address)

    @admin.display(description="Bill to")
    def bill_to(self, order: Order) -> str:
        return format_address(order.billing_address)

    @admin.display(description="Ship to")
    def ship_to_area(self, order: Order) -> str:
        return format_address(personal_data.address_reduced(order.shipping_address))

    @admin.display(description="Bill to")
    def bill_to_area(self, order: Order) -> str:
        return format_address(personal_data.address_reduced(order.billing_address))

    @admin.display(description="Address check")
    def address_verdict(self, order: Order) -> str:
        if not order.address_deliverability:
            return "not checked yet"
        confidence = order.address_confidence if order.address_confidence is not None else "-"
        source = "offline rules" if order.address_source == "offline" else order.address_source
        return f"{order.get_address_deliverability_display()}, confidence {confidence} ({source})"

    @admin.display(description="Score breakdown")
    def risk_breakdown(self, order: Order) -> str:
        signals = order.risk_signals if isinstance(order.risk_signals, list) else []
        rows = [(f"+{s.get('weight', 0)}", s.get("name", "?"), s.get("evidence", ""))
                for s in signals if isinstance(s, dict)]  # fmt: skip
        if not rows:
            return "no signals" if order.risk_score is not None else "not scored yet"
        return format_html_join("", "{} {}: {}<br>", rows)

    amount = money_display("total", "Total")
    subtotal_ = money_display("subtotal", "Subtotal")
    discount_ = money_display("discount_total", "Discounts")
    shipping_ = money_display("shipping_total", "Shipping")
    tax_ = money_display("tax_total", "Tax")
    refunded_ = money_display("refunded_total", "Refunded")

    def get_urls(self) -> list[Any]:
        urls = [
            path(
                "<int:object_id>/transition/",
                self.admin_site.admin_view(self.transition_view),
                name="orders_order_transition",
            ),
        ]
        return urls + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:  # fmt: skip
        extra_context = dict(extra_context or {})
        order = self.get_object(request, object_id)
        if order is not None:
            offered = [
                {**t, "input": TRANSITION_INPUTS.get(t["name"]), "danger": t["name"] in DANGEROUS,
                 "label": t["name"].replace("_", " ").capitalize()}
                for t in order_available_transitions(order=order, user=request.user)
            ]  # fmt: skip
            # Everyday moves first, the ones that cannot be undone last.
            extra_context["transitions"] = sorted(offered, key=lambda t: t["danger"])
            extra_context["extension_panels"] = order_panels(request, order)
            extra_context["show_save"] = False
            extra_context["show_save_and_continue"] = False
            extra_context["show_save_and_add_another"] = False
        return super().change_view(request, object_id, form_url, extra_context)

    def transition_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        order = get_object_or_404(Order, pk=object_id)
        if not self.has_view_permission(request, order):
            raise PermissionDenied
        back = reverse("admin:orders_order_change", args=[order.pk])
        if request.method != "POST":
            return HttpResponseRedirect(back)
        name = request.POST.get("transition", "")
        try:
            order = order_transition(
                order_id=order.pk,
                transition=name,
                actor=Actor.for_user(request.user),
                expected_status=request.POST.get("expected_state") or None,
                reason=request.POST.get("reason", ""),
                amount=request.POST.get("amount") or None,
            )
        except DomainError as exc:
            self.message_user(request, f"Refused: {exc}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Order {order.external_id}: {name.replace('_', ' ')} done (status "
                f"{order.get_status_display()}, payment {order.get_payment_status_display()}).",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(back)


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "order", "actor_kind", "actor_id", "action", "from_state", "to_state"]
    list_filter = ["action", "actor_kind"]
    search_fields = ["=order__external_id", "=correlation_id"]
    list_select_related = ["order"]
    date_hierarchy = "at"
    FIELDS = ["order", "at", "actor_kind", "actor_id", "action", "field", "from_state",
              "to_state", "correlation_id"]  # fmt: skip

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The snapshot whole for raw-payload viewers; for the others its personal parts redacted.
        return [*self.FIELDS, "data" if personal_data.sees_raw_payloads(request.user) else "data_"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)

    @admin.display(description="Data")
    def data_(self, event: OrderEvent) -> str:
        return json.dumps(personal_data.snapshot_redacted(event.data), indent=2, sort_keys=True,
                          default=str)  # fmt: skip


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["id", "email", "name", "account_type", "net_terms_days", "credit_limit",
                    "credit_currency", "created_at"]  # fmt: skip
    list_filter = ["account_type", "net_terms_approved"]
    search_fields = ["email", "name", "company_name"]
    CREDIT_FIELDS = ["net_terms_days", "net_terms_approved", "credit_limit", "credit_currency"]

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Without orders.view_contact_details the phone is neither shown nor changed.
        return [] if personal_data.sees_contact_details(request.user) else ["phone"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Credit terms are finance's call: others see them but cannot change them.
        if request.user.has_perm("orders.manage_credit"):
            return []
        return list(self.CREDIT_FIELDS)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    """The catalogue (``import_products`` fills it); channels map their references onto it."""

    list_display = ["sku", "title", "weight_grams", "hs_code", "origin_country", "is_active"]
    list_filter = ["is_active", "origin_country"]
    search_fields = ["sku", "title", "hs_code"]


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["id", "category", "severity", "status", "order_link", "summary",
                    "occurrence_count", "first_seen_at", "last_seen_at"]  # fmt: skip
    list_filter = ["status", "category", "severity", "first_seen_at"]
    search_fields = ["=order__external_id", "summary", "=correlation_id"]
    list_select_related = ["order"]
    actions = ["acknowledge", "resolve"]
    readonly_fields = ["category", "severity", "order", "fingerprint", "summary", "details",
                       "correlation_id", "first_seen_at", "last_seen_at", "occurrence_count",
                       "status", "acknowledged_by", "resolved_by", "resolved_at",
                       "resolution_note"]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Order")
    def order_link(self, incident: Incident) -> str:
        order = incident.order  # None without a query when there is no order
        if order is None:
            return "—"
        url = reverse("admin:orders_order_change", args=[order.pk])
        return format_html('<a href="{}">{}</a>', url, order.external_id)

    def _apply(self, request: HttpRequest, queryset: QuerySet[Incident], name: str) -> None:
        done = 0
        for incident_id in queryset.values_list("pk", flat=True):
            try:
                incident_transition(
                    incident_id=incident_id, transition=name, actor=Actor.for_user(request.user)
                )
                done += 1
            except DomainError as exc:
                self.message_user(request, f"Incident {incident_id}: {exc}", messages.ERROR)
        if done:
            self.message_user(
                request, f"{name.capitalize()}d {done} incident(s).", messages.SUCCESS
            )

    @admin.action(description="Acknowledge selected incidents", permissions=["work"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._apply(request, queryset, "acknowledge")

    @admin.action(description="Resolve selected incidents", permissions=["work"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._apply(request, queryset, "resolve")

    def has_work_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.work_incident")


# --- refunds ------------------------------------------------------------------------------------
# Refunds are records the services keep: shown here, never typed in, changed or deleted. The one
# move a person makes is saying that a ``manual`` refund was made by hand in the channel's own
# admin (``refund_transition confirm_manual``, as the API's ``confirm_manual``).
CONFIRMABLE = (RefundStatus.MANUAL, RefundStatus.FAILED)


def refund_mismatched(refund: Refund) -> bool:
    """Did the channel's figures differ from ours (a ``refund_mismatch`` incident was opened)?"""
    return bool((refund.computed or {}).get("differences"))


def may_confirm_refund(user: Any) -> bool:
    return bool(user.has_perm(refunds.PERM_ISSUE))


class RefundMismatchFilter(admin.SimpleListFilter):
    title = "channel's figures"
    parameter_name = "mismatch"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "differ from ours"), ("no", "agree (or ours)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Refund]) -> QuerySet[Refund]:
        differ = Q(computed__has_key="differences") & ~Q(computed__differences=[])
        if self.value() == "yes":
            return queryset.filter(differ)
        if self.value() == "no":
            return queryset.exclude(differ)
        return queryset


class RefundLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RefundLine
    extra = 0
    can_delete = False
    fields = readonly_fields = ("line_", "quantity", "amount_", "tax_", "restock_type",
                                "restocked_quantity", "restock_warehouse")  # fmt: skip
    amount_ = money_display("amount", "Goods")
    tax_ = money_display("tax", "Tax")

    @admin.display(description="Order line")
    def line_(self, line: RefundLine) -> str:
        ol = line.order_line
        return f"{ol.line_no}: {ol.sku or ol.channel_sku} {ol.title}".strip()


class RefundPaymentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RefundPayment
    verbose_name_plural = "Per payment method"
    extra = 0
    can_delete = False
    fields = readonly_fields = ("method", "amount_", "external_id")
    amount_ = money_display("amount", "Amount")


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["reference", "order_link", "source", "amount_", "status", "mismatch",
                    "created_at"]  # fmt: skip
    list_filter = ["source", "status", RefundMismatchFilter]
    search_fields = ["=reference", "=order__external_id", "=order__order_number", "=external_id"]
    list_select_related = ["order"]
    date_hierarchy = "created_at"
    inlines = [RefundLineInline, RefundPaymentInline]
    change_form_template = "admin/orders/refund/change_form.html"
    fieldsets = [
        (None, {"fields": ["reference", "order_link", "source", "external_id", "status",
                           "failure_reason", "reason", "note", "created_by", "processed_at",
                           "created_at", "correlation_id", "timeline_link"]}),
        ("Amounts", {"fields": ["lines_amount_", "lines_tax_", "shipping_", "shipping_tax_",
                                "fees_", "restocking_fee_", "adjustment_", "amount_"]}),
        ("Ours and the channel's", {"fields": ["figures"]}),
    ]  # fmt: skip
    readonly_fields = flatten_fieldsets(fieldsets)

    amount_ = money_display("amount", "Amount")
    lines_amount_ = money_display("lines_amount", "Goods")
    lines_tax_ = money_display("lines_tax", "Goods tax")
    shipping_ = money_display("shipping", "Shipping")
    shipping_tax_ = money_display("shipping_tax", "Shipping tax")
    fees_ = money_display("fees", "Fees given back")
    restocking_fee_ = money_display("restocking_fee", "Restocking fee kept")
    adjustment_ = money_display("adjustment", "Channel adjustment")

    @admin.display(description="Mismatch", boolean=True)
    def mismatch(self, refund: Refund) -> bool:
        return refund_mismatched(refund)

    @admin.display(description="Order", ordering="order__external_id")
    def order_link(self, refund: Refund) -> str:
        url = reverse("admin:orders_order_change", args=[refund.order_id])
        return format_html('<a href="{}">{}</a>', url, refund.order.external_id)

    @admin.display(description="Timeline")
    def timeline_link(self, refund: Refund) -> str:
        url = reverse("admin:orders_orderevent_changelist")
        return format_html('<a href="{}?order__id__exact={}&q={}">the order\'s timeline</a>',
                           url, refund.order_id, refund.correlation_id)  # fmt: skip

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # The channel's raw figures redacted, whole only for raw-payload viewers.
        if not personal_data.sees_raw_payloads(request.user):
            return self.fieldsets
        return [(name, {**options, "fields": [f if f != "figures" else "figures_whole"
                                              for f in options["fields"]]})
                for name, options in self.fieldsets]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return flatten_fieldsets(self.get_fieldsets(request, obj))

    @admin.display(description="Figures")
    def figures(self, refund: Refund) -> str:
        return self._figures(refund, raw=personal_data.snapshot_redacted(refund.channel_figures))

    @admin.display(description="Figures")
    def figures_whole(self, refund: Refund) -> str:
        return self._figures(refund, raw=refund.channel_figures)

    def _figures(self, refund: Refund, *, raw: Any) -> str:
        """Per line: what the refund holds (the channel's figures where it computed them) next
        to what we compute for the same units; then the differences and the channel's raw."""
        ours = {row.get("order_line_id"): row for row in (refund.computed or {}).get("lines", [])}
        rows = []
        for line in refund.lines.select_related("order_line"):
            mine = ours.get(line.order_line_id, {})
            rows.append((line.order_line.line_no, line.quantity, line.amount, mine.get("amount",
                         "-"), line.tax, mine.get("tax", "-")))  # fmt: skip
        table = format_html(
            "<table><thead><tr><th>Line</th><th>Units</th><th>Goods (recorded)</th>"
            "<th>Goods (ours)</th><th>Tax (recorded)</th><th>Tax (ours)</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                             "<td>{}</td></tr>", rows) if rows else format_html(
                "<tr><td colspan=6>{}</td></tr>", "no lines (an amount only)"),
        )  # fmt: skip
        differences = (refund.computed or {}).get("differences") or []
        diff_html = format_html(
            "<p><strong>The channel's figures differ from ours:</strong></p><ul>{}</ul>",
            format_html_join("", "<li>{} {}: channel {}, ours {}</li>",
                             ((f"line #{d['order_line_id']}" if d.get("order_line_id") else
                               "refund", d.get("what"), d.get("channel"), d.get("ours"))
                              for d in differences)),
        ) if differences else format_html("<p>{}</p>", "No difference between the "
                                          "channel's figures and ours.")  # fmt: skip
        shown = ""
        if raw:
            shown = format_html("<details><summary>The channel's own figures</summary><pre>{}"
                                "</pre></details>", json.dumps(raw, indent=2, sort_keys=True,
                                                                default=str))  # fmt: skip
        return format_html("{}{}{}", table, diff_html, shown)

    def get_urls(self) -> list[Any]:
        confirm = self.admin_site.admin_view(self.confirm_manual_view)
        return [path("<int:object_id>/confirm_manual/", confirm,
                     name="orders_refund_confirm_manual"), *super().get_urls()]  # fmt: skip

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:  # fmt: skip
        extra_context = dict(extra_context or {})
        refund = self.get_object(request, object_id)
        extra_context["can_confirm_manual"] = (
            refund is not None and refund.status in CONFIRMABLE
            and may_confirm_refund(request.user)
        )  # fmt: skip
        return super().change_view(request, object_id, form_url, extra_context)

    def confirm_manual_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        refund = get_object_or_404(Refund, pk=object_id)
        if not self.has_view_permission(request, refund) or not may_confirm_refund(request.user):
            raise PermissionDenied
        back = reverse("admin:orders_refund_change", args=[refund.pk])
        if request.method != "POST":
            return HttpResponseRedirect(back)
        try:
            with transaction.atomic():
                refund = refunds.refund_transition(refund_id=refund.pk,
                                                   transition="confirm_manual",
                                                   actor=Actor.for_user(request.user))  # fmt: skip
        except DomainError as exc:
            self.message_user(request, f"Refused: {exc}", messages.ERROR)
        else:
            self.message_user(request, f"Refund {refund.reference}: confirmed as refunded by "
                              "hand.", messages.SUCCESS)  # fmt: skip
        return HttpResponseRedirect(back)


@admin.register(RefundLimit)
class RefundLimitAdmin(admin.ModelAdmin):
    """The largest refund a role may issue without finance, per currency (finance and
    operations set them: ``orders.*_refundlimit``; finance itself has no limit)."""

    list_display = ["group", "currency", "max_amount"]
    list_filter = ["group", "currency"]
    list_editable = ["max_amount"]
    ordering = ["group__name", "currency"]


@register_order_panel
def order_refunds_panel(request: HttpRequest, order: Order) -> str:
    """The order's refunds with their money per payment method, and per payment method what
    was captured, refunded and is left."""
    if not request.user.has_perm("orders.view_refund"):
        return ""
    rows = []
    for refund in order.refunds.prefetch_related("payments").order_by("created_at", "id"):
        url = reverse("admin:orders_refund_change", args=[refund.pk])
        split = ", ".join(f"{p.method} {p.amount}" for p in refund.payments.all()) or "-"
        rows.append((url, refund.reference, refund.get_source_display(),
                     refund.get_status_display(), f"{refund.amount} {refund.currency}",
                     split))  # fmt: skip
    refunds_html = format_html(
        "<table><thead><tr><th>Refund</th><th>Source</th><th>Status</th><th>Amount</th>"
        "<th>Per payment method</th></tr></thead><tbody>{}</tbody></table>",
        format_html_join("", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td>'
                         "<td>{}</td></tr>", rows),
    ) if rows else format_html('<p class="none">{}</p>', "No refunds.")  # fmt: skip
    methods = []
    for pay in order.payments.all():
        captured = f"{pay.captured} {pay.currency}" if pay.captured is not None else "not known"
        left = f"{pay.captured - pay.refunded} {pay.currency}" if pay.captured is not None else "-"
        methods.append((pay.method, captured, f"{pay.refunded} {pay.currency}", left))
    methods_html = format_html(
        "<table><thead><tr><th>Payment method</th><th>Captured</th><th>Refunded</th>"
        "<th>Left</th></tr></thead><tbody>{}</tbody></table>",
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", methods),
    ) if methods else ""  # fmt: skip
    return format_html(
        '<section class="lifecycle" aria-label="Refunds"><h2>Refunds</h2>{}{}'
        "<p>Captured {} {}, refunded {} {}.</p></section>",
        refunds_html, methods_html, money.normalize(order.captured_total, order.currency),
        order.currency, money.normalize(order.refunded_total, order.currency), order.currency,
    )  # fmt: skip


# --- API tokens ---------------------------------------------------------------------------------
# DRF's own TokenAdmin lists every key in clear and lets anyone with `add_tokenproxy` mint a token
# for any user, a superuser included. Here a key is never shown, ops may only see and revoke, and
# issuing stays with superusers (or `manage.py drf_create_token` on the server).
admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class ApiTokenAdmin(DrfTokenAdmin):
    list_display = ["user", "key_hint", "created"]
    fields = ["user"]
    readonly_fields = []  # nothing is read-only: a superuser picks the user when issuing

    @admin.display(description="Key")
    def key_hint(self, token: TokenProxy) -> str:
        return "…" + token.key[-4:]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
