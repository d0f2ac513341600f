"""Admin for channels, their SKU and tax code mappings, and the inbox (with replay). The catalogue
(``orders.Product``) has its screen in ``orders.admin``."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from channels.models import (
    InboundEvent,
    InboundStatus,
    SalesChannel,
    SkuMapping,
    TaxCodeMapping,
    credential_url_problems,
)
from channels.services import VIEW_RAW_PAYLOAD, inbound_event_replay
from config.admin_mixins import ReadOnlyAdminMixin, errors_html, first_error_text
from orders.actors import Actor
from orders.errors import DomainError


class SalesChannelForm(forms.ModelForm):
    """Secrets are write-only: a blank field keeps the stored value; nothing is ever shown."""

    webhook_secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current secret. It is never shown again.",
    )  # fmt: skip
    auth_header_value = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current value.",
    )  # fmt: skip
    api_base_url = forms.URLField(required=False, assume_scheme="https", label="API base URL")
    credentials_json = forms.CharField(
        required=False, label="API credentials (JSON)", widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Leave blank to keep the stored credentials. They are never shown again.",
    )  # fmt: skip

    class Meta:
        model = SalesChannel
        fields = ["name", "slug", "kind", "is_active", "default_currency", "rounding",
                  "webhook_secret", "auth_header_name", "auth_header_value", "api_base_url",
                  "api_version", "tracking_writeback", "writeback_notify_customer",
                  "writeback_complete_order", "tracking_callback_url"]  # fmt: skip

    def clean_credentials_json(self) -> dict[str, Any] | None:
        raw = self.cleaned_data.get("credentials_json", "").strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Credentials must be a JSON object")
        problems = credential_url_problems(value)  # the URL guard's policy, e.g. lwa_token_url
        if problems:
            raise forms.ValidationError(problems)
        return value

    def save(self, commit: bool = True) -> SalesChannel:
        channel = super().save(commit=False)
        for name in ("webhook_secret", "auth_header_value"):
            new = self.cleaned_data.get(name)
            stored = (
                SalesChannel.objects.values_list(name, flat=True).get(pk=channel.pk)
                if channel.pk else ""
            )  # fmt: skip
            setattr(channel, name, stored)
            if new and name == "webhook_secret":
                channel.webhook_secret_replace(new)  # the old one stays valid for a grace window
            elif new:
                setattr(channel, name, new)
        if self.cleaned_data.get("credentials_json") is not None:
            channel.credentials = self.cleaned_data["credentials_json"]
        if commit:
            channel.save()
        return channel


# The form's write-only fields: offered only to those who may change a channel.
SECRET_FORM_FIELDS = ("webhook_secret", "auth_header_value", "credentials_json")


@admin.register(SalesChannel)
class SalesChannelAdmin(admin.ModelAdmin):
    form = SalesChannelForm
    list_display = ["name", "slug", "kind", "default_currency", "is_active", "secret_set",
                    "webhook_url", "last_polled_at"]  # fmt: skip
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["secrets_state", "poll_cursor", "last_polled_at", "created_at"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        """Secrets are never rendered to anyone. Those who may change the channel get the
        write-only replace fields; everyone else (view only: customer service, reviewers,
        finance) sees only whether each secret is set, since Django would otherwise render
        the stored values of the form's fields as read-only text."""
        fields = [f for f in super().get_fields(request, obj) if f != "secrets_state"]
        if not self.has_change_permission(request, obj):
            fields = [f for f in fields if f not in SECRET_FORM_FIELDS]
        return ["secrets_state", *fields] if obj is not None else fields

    @admin.display(description="Secrets")
    def secrets_state(self, channel: SalesChannel) -> str:
        states = [
            f"{label}: {'set' if value else 'not set'}"
            for label, value in (
                ("Webhook secret", channel.webhook_secret),
                ("Auth header value", channel.auth_header_value),
                ("API credentials", channel.credentials),
            )
        ]
        if channel.previous_secret_accepted() and channel.previous_secret_expires_at:
            until = channel.previous_secret_expires_at.astimezone(UTC)
            states.append(f"Previous secret: accepted until {until:%Y-%m-%d %H:%M} UTC")
        return " · ".join(states)

    @admin.display(description="Secret", boolean=True)
    def secret_set(self, channel: SalesChannel) -> bool:
        return bool(channel.webhook_secret or channel.auth_header_value)

    @admin.display(description="Webhook URL")
    def webhook_url(self, channel: SalesChannel) -> str:
        return reverse("webhook", args=[channel.slug])


@admin.register(SkuMapping)
class SkuMappingAdmin(admin.ModelAdmin):
    list_display = ["channel", "external_ref", "product"]
    list_filter = ["channel"]
    search_fields = ["external_ref", "product__sku"]
    autocomplete_fields = ["product"]
    list_select_related = ["channel", "product"]


@admin.register(TaxCodeMapping)
class TaxCodeMappingAdmin(admin.ModelAdmin):
    list_display = ["channel", "channel_tax", "tax_code"]
    list_filter = ["channel"]
    search_fields = ["channel_tax", "tax_code"]


def may_view_raw(request: HttpRequest) -> bool:
    return request.user.has_perm(VIEW_RAW_PAYLOAD)


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "received_at", "channel", "source", "topic", "status", "outcome",
                    "order_link", "first_error", "duplicate_deliveries", "attempts"]  # fmt: skip
    list_filter = ["status", "channel", "source", "topic"]
    search_fields = ["=dedup_key", "=correlation_id", "=order__external_id"]
    list_select_related = ["channel", "order"]
    date_hierarchy = "received_at"
    actions = ["replay"]
    fields = readonly_fields = (
        "channel", "source", "topic", "api_version", "status", "outcome", "order_link",
        "error_list", "dedup_key", "correlation_id", "received_at", "processed_at", "attempts",
        "duplicate_deliveries", "last_delivery_at", "body_bytes", "headers_shown", "body_preview",
        "fetched_shown",
    )  # fmt: skip
    # Raw bodies, headers and what was fetched hold personal data: only for those who may see
    # raw payloads (ops_admin, superusers); everyone else sees the row and redacted errors.
    RAW_FIELDS = ("headers_shown", "body_preview", "fetched_shown")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if may_view_raw(request):
            return self.fields
        return [
            "error_list_redacted" if name == "error_list" else name
            for name in self.fields
            if name not in self.RAW_FIELDS
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("channels.replay_inboundevent")

    @admin.display(description="Order")
    def order_link(self, event: InboundEvent) -> str:
        order = event.order  # None without a query when there is no order
        if order is None:
            return "—"
        url = reverse("admin:orders_order_change", args=[order.pk])
        return format_html('<a href="{}">{}</a>', url, order.external_id)

    @admin.display(description="Problem")
    def first_error(self, event: InboundEvent) -> str:
        return first_error_text(event.errors)

    @admin.display(description="Errors")
    def error_list(self, event: InboundEvent) -> str:
        return errors_html(event.errors, with_values=True)

    @admin.display(description="Errors")
    def error_list_redacted(self, event: InboundEvent) -> str:
        """The errors without the values they quote (a value can be personal data)."""
        return errors_html(event.errors)

    @admin.display(description="Fetched from the channel's API")
    def fetched_shown(self, event: InboundEvent) -> str:
        if event.fetched is None:
            return "—"
        return format_html("<pre>{}</pre>", json.dumps(event.fetched, indent=2, sort_keys=True))

    @admin.display(description="Headers")
    def headers_shown(self, event: InboundEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.headers, indent=2, sort_keys=True))

    @admin.display(description="Body (first 4 KB)")
    def body_preview(self, event: InboundEvent) -> str:
        text = bytes(event.raw_body[:4096]).decode("utf-8", errors="replace")
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", text)

    @admin.action(description="Replay selected quarantined events", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[InboundEvent]) -> None:
        actor = Actor.for_user(request.user)
        for event_id, before in queryset.values_list("pk", "status"):
            try:
                event = inbound_event_replay(event_id=event_id, actor=actor)
            except DomainError as exc:
                self.message_user(request, f"Event {event_id}: {exc}", messages.ERROR)
                continue
            if before != InboundStatus.QUARANTINED:
                self.message_user(
                    request, f"Event {event_id} was not quarantined ({event.status}): unchanged.",
                    messages.INFO,
                )  # fmt: skip
            elif event.status == InboundStatus.REPLAYED:
                self.message_user(
                    request, f"Event {event_id} replayed: order {event.outcome}.", messages.SUCCESS
                )
            elif event.status == InboundStatus.QUARANTINED:
                self.message_user(
                    request, f"Event {event_id} is still quarantined: {self.first_error(event)}",
                    messages.WARNING,
                )  # fmt: skip
            else:
                self.message_user(
                    request, f"Event {event_id} was not quarantined ({event.status}): unchanged.",
                    messages.INFO,
                )  # fmt: skip
