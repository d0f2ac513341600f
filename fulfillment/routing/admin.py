"""Admin for routing rules: edit them with schema-checked JSON, try them on a real order.

People with ``fulfillment.view_routingrule`` see the rules and the "Try it on an order" preview
(it also needs ``orders.view_order`` to look an order up); ``change_routingrule`` edits them.
The preview evaluates every active rule against the order (nothing is stored) and shows, for
each rule, every condition with the expected and the actual value, the merged actions with the
rule each came from, and the customs lines when a declaration is due.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.admin_mixins import ReadOnlyAdminMixin
from fulfillment.models import RoutingDecision, RoutingRule
from fulfillment.routing.conditions import condition_checks
from fulfillment.routing.evaluation import FLAGS, evaluate
from fulfillment.routing.explain import describe_actions, describe_rule
from fulfillment.routing.validation import validate_rule
from orders.models import Order

CONDITIONS_HELP = (
    "A JSON object; every condition present must hold. Keys: order_total "
    '{"gte": "1000.00", "lt": "5000.00", "currency": "USD"}, destination '
    '{"international": true, "countries_in": ["CA"], "countries_not_in": ["US"]}, channels_in '
    '["shop"], customer_type "consumer" | "business", subscription_renewal true | false, '
    'weight_grams {"gte": 0, "lt": 2000}, sku_tags_any ["hazmat"], sku_tags_none ["fragile"]. '
    "{} matches every order."
)
ACTIONS_HELP = (
    'A JSON object. Keys: carrier "local", service_level economy | ground | express | premium, '
    'warehouse "NJ1" or warehouse_kind "own" | "3pl", lane "fulfillment" (or sync, notify, '
    'ingest, or a dedicated lane such as "subscriptions"), flags {"signature_required": true, '
    '"customs_declaration": true, "hazmat": true}, continue true (apply, then let lower-priority '
    "rules set what is still unset)."
)


class RuleJSONField(forms.JSONField):
    """JSON in a monospace textarea, shown indented; a syntax error says where it is."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget",
            forms.Textarea(
                attrs={"rows": 10, "cols": 90, "spellcheck": "false", "class": "routing-json"}
            ),
        )
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        if self.disabled or value in self.empty_values or not isinstance(value, str):
            return super().to_python(value)
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. Names and "
                "strings need double quotes; no comma after the last item.",
                code="invalid",
            ) from None

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2)


class RoutingRuleForm(forms.ModelForm):
    conditions = RuleJSONField(required=False, help_text=CONDITIONS_HELP)
    actions = RuleJSONField(help_text=ACTIONS_HELP)

    class Meta:
        model = RoutingRule
        fields = ["name", "priority", "is_active", "description", "conditions", "actions"]

    def clean_conditions(self) -> Any:
        value = self.cleaned_data.get("conditions")
        return {} if value is None else value

    def clean(self) -> dict[str, Any]:
        super().clean()  # ModelForm's clean turns on the unique checks
        # Read cleaned_data itself: django-stubs types clean()'s return as optional.
        cleaned = self.cleaned_data
        if "conditions" not in cleaned or "actions" not in cleaned:
            return cleaned  # a JSON syntax error is already on the field
        for error in validate_rule(cleaned["conditions"], cleaned["actions"]):
            where = error["pointer"]
            name = next((f for f in ("conditions", "actions") if where.startswith(f"/{f}")), None)
            inside = where[len(f"/{name}") :] if name else where
            message = f"{inside}: {error['message']}" if inside else error["message"]
            self.add_error(name, message)
        return cleaned


class OrderPickForm(forms.Form):
    order = forms.CharField(
        label="Order",
        max_length=100,
        help_text="The order id (#123 or 123) or the channel's external id.",
    )

    def clean_order(self) -> Order:
        value = self.cleaned_data["order"].strip()
        query = Q(external_id=value)
        digits = value.removeprefix("#")
        if digits.isdigit():
            query = Q(pk=int(digits)) if value.startswith("#") else query | Q(pk=int(digits))
        found = list(Order.objects.filter(query).select_related("channel").order_by("pk")[:6])
        if not found:
            raise ValidationError(f"No order has the id or external id {value!r}.")
        if len(found) > 1:
            which = "; ".join(
                f"#{o.pk} ({o.channel.slug}, external id {o.external_id})" for o in found
            )
            raise ValidationError(
                f"{value!r} names more than one order: {which}. Enter #<id> for one of them."
            )
        return found[0]


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    form = RoutingRuleForm
    list_display = ["priority", "name", "is_active", "summary", "updated_at"]
    list_display_links = ["name"]
    list_editable = ["priority", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "description"]
    ordering = ["priority", "id"]
    change_form_template = "admin/fulfillment/routingrule/change_form.html"
    readonly_fields = ["summary", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "priority", "is_active", "description"]}),
        ("Rule", {"fields": ["conditions", "actions", "summary"]}),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    @admin.display(description="In words")
    def summary(self, rule: RoutingRule) -> str:
        return describe_rule(rule) if rule.pk else "-"

    def get_urls(self) -> list[Any]:
        urls = [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="fulfillment_routingrule_preview",
            ),
        ]
        return urls + super().get_urls()

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Try the rules on one order: which rule matched and why (nothing is stored)."""
        rule = self.get_object(request, unquote(object_id))
        if rule is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined]  # Django's private helper, not in django-stubs
        if not self.has_view_or_change_permission(request, rule):
            raise PermissionDenied
        form = OrderPickForm(request.GET or None)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Try “{rule.name}” on an order",
            "rule": rule,
            "rule_summary": describe_rule(rule),
            "form": form,
        }
        if form.is_bound and not request.user.has_perm("orders.view_order"):
            form.add_error(None, "You may not view orders, so you cannot try rules on one.")
        elif form.is_valid():
            context.update(self._preview(rule, form.cleaned_data["order"]))
        return TemplateResponse(request, "admin/fulfillment/routingrule/preview.html", context)

    def _preview(self, rule: RoutingRule, order: Order) -> dict[str, Any]:
        evaluation = evaluate(order)
        this = next((r for r in evaluation.rules if r.rule_id == rule.pk), None)
        inactive_checks = []
        if this is None:  # an inactive rule: show what it would say, outside the evaluation
            errors = validate_rule(rule.conditions, rule.actions)
            if not errors:
                inactive_checks = condition_checks(rule.conditions, evaluation.facts)
        actions = evaluation.actions
        outcome = [
            ("Carrier", actions.get("carrier"), evaluation.sources.get("carrier")),
            (
                "Service level",
                actions.get("service_level"),
                evaluation.sources.get("service_level"),
            ),
        ]
        if "warehouse" in actions:
            outcome.append(("Warehouse", actions["warehouse"], evaluation.sources["warehouse"]))
        elif "warehouse_kind" in actions:
            outcome.append(
                ("Warehouse kind", actions["warehouse_kind"], evaluation.sources["warehouse"])
            )
        else:
            outcome.append(("Warehouse", "chosen by allocation", "no rule set one"))
        outcome.append(("Lane", actions.get("lane"), evaluation.sources.get("lane")))
        for flag in FLAGS:
            if flag in actions.get("flags", {}):
                value = "yes" if actions["flags"][flag] else "no"
                outcome.append(
                    (
                        flag.replace("_", " ").capitalize(),
                        value,
                        evaluation.sources.get(f"flags.{flag}"),
                    )
                )
        # Keyed by the optional id, so a rule without one looks up to None below.
        rule_links: dict[int | None, str] = {
            r.rule_id: reverse("admin:fulfillment_routingrule_change", args=[r.rule_id])
            for r in evaluation.rules
            if r.rule_id
        }
        latest = (
            RoutingDecision.objects.filter(order=order)
            .select_related("rule")
            .order_by("-decided_at", "-id")
            .first()
        )
        return {
            "order": order,
            "order_url": reverse("admin:orders_order_change", args=[order.pk]),
            "evaluation": evaluation,
            "results": [(r, rule_links.get(r.rule_id)) for r in evaluation.rules],
            "this": this,
            "inactive_checks": inactive_checks,
            "outcome": outcome,
            "outcome_summary": evaluation.summary(),
            "latest_decision": latest,
            "latest_summary": describe_actions(latest.actions) if latest else "",
        }


@admin.register(RoutingDecision)
class RoutingDecisionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What routing decided per order (read-only: ``route_order`` writes them)."""

    list_display = ["decided_at", "order", "rule", "outcome"]
    list_select_related = ["order", "rule"]
    list_filter = ["rule"]
    search_fields = ["=order__external_id"]
    date_hierarchy = "decided_at"
    fields = readonly_fields = ("order", "rule", "decided_at", "outcome", "reasons")

    @admin.display(description="Outcome")
    def outcome(self, decision: RoutingDecision) -> str:
        return describe_actions(decision.actions)

    @admin.display(description="Why")
    def reasons(self, decision: RoutingDecision) -> str:
        entries = [e for e in decision.explanation or [] if isinstance(e, dict)]
        rows = [(e.get("rule", ""), e.get("note", "")) for e in entries if e.get("kind") == "rule"]
        if not rows:
            return "no rule was active"
        return format_html("<ul>{}</ul>", format_html_join("", "<li><b>{}</b>: {}</li>", rows))
