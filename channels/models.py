"""Sales channels, their SKU and tax code mappings (the catalogue itself is ``orders.Product``),
and the inbox of inbound events."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, transition

from config import integrations
from orders.models import FSMRowMixin


def credential_url_problems(credentials: Mapping[str, Any] | None) -> list[str]:
    """Why the URLs in a channel's credentials (every ``*_url`` key, such as Amazon's
    ``lwa_token_url``) may not be called, one line per refused key; the outbound URL guard's
    policy (``config.integrations.url_problem``)."""
    problems = []
    for key, value in sorted((credentials or {}).items()):
        if not str(key).lower().endswith("_url") or value in ("", None):
            continue
        problem = integrations.url_problem(value) if isinstance(value, str) else "not a URL"
        if problem:
            problems.append(f"{key} refused: {problem}")
    return problems


class ChannelKind(models.TextChoices):
    SHOPIFY = "shopify", "Shopify"
    BIGCOMMERCE = "bigcommerce", "BigCommerce"
    AMAZON = "amazon", "Amazon Seller Central"
    WOOCOMMERCE = "woocommerce", "WooCommerce"
    CUSTOM = "custom", "Custom storefront"


class SalesChannel(models.Model):
    """A store we take orders from. Its kind picks the signature scheme, schema and parser."""

    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    slug = models.SlugField(
        max_length=50,
        unique=True,
        # The admin renders help text as HTML: no angle brackets (a "<slug>" vanished there).
        help_text="Webhook URL: /webhooks/ and then this slug, e.g. /webhooks/my-shop/",
    )
    name = models.CharField(max_length=100)
    default_currency = models.CharField(max_length=3, default="USD")
    rounding = models.CharField(
        max_length=16,
        default="ROUND_HALF_UP",
        choices=[(mode, mode.removeprefix("ROUND_").replace("_", " ").lower()) for mode in
                 ("ROUND_HALF_UP", "ROUND_HALF_EVEN", "ROUND_DOWN", "ROUND_UP", "ROUND_HALF_DOWN")],
        help_text="How this channel rounds amounts to the currency's minor units.",
    )  # fmt: skip
    webhook_secret = models.CharField(
        max_length=255, blank=True,
        help_text="Signing secret (Shopify app secret, WooCommerce webhook secret, BigCommerce "
        "client secret, custom HMAC key). Stored, never shown again.",
    )  # fmt: skip
    previous_webhook_secret = models.CharField(
        max_length=255, blank=True, editable=False,
        help_text="The secret the current one replaced, accepted until previous_secret_expires_at.",
    )  # fmt: skip
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    auth_header_name = models.CharField(
        max_length=64, blank=True,
        help_text="BigCommerce without signatures: the custom header set on the webhook.",
    )  # fmt: skip
    auth_header_value = models.CharField(max_length=255, blank=True)
    api_base_url = models.URLField(blank=True, help_text="REST API base for pulling orders.")
    api_version = models.CharField(max_length=32, blank=True)
    credentials = models.JSONField(
        default=dict, blank=True, help_text="API credentials (kept out of every screen)."
    )
    # --- tracking write-back (channels.writeback) ---
    tracking_writeback = models.BooleanField(
        default=True,
        help_text="Send each parcel's tracking and delivery events back to this channel.",
    )
    writeback_notify_customer = models.BooleanField(
        default=False,
        help_text="Ask the channel to email the customer about the shipment itself (Shopify "
        "notify_customer, a WooCommerce customer note). Off: our own emails tell them.",
    )
    writeback_complete_order = models.BooleanField(
        default=True,
        help_text="Mark the channel's order completed once every unit has shipped (WooCommerce).",
    )
    tracking_callback_url = models.URLField(
        blank=True,
        help_text="Custom storefronts: where each shipment event is posted, signed like the "
        "storefront signs its webhooks (t=...,v1=...).",
    )
    poll_cursor = models.DateTimeField(
        null=True, blank=True, help_text="Polling resumes from orders updated after this time."
    )
    last_polled_at = models.DateTimeField(null=True, blank=True)
    refunds_poll_cursor = models.DateTimeField(
        null=True, blank=True,
        help_text="Refund polling (Amazon Finances) resumes from events posted after this time.",
    )  # fmt: skip
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        self._clean_webhook_secret()

    def _clean_webhook_secret(self) -> None:
        """A Standard Webhooks (BigCommerce) ``whsec_`` secret must decode to a usable key."""
        from channels.signatures import whsec_problem

        if self.kind != ChannelKind.BIGCOMMERCE:
            return
        if problem := whsec_problem(self.webhook_secret):
            raise ValidationError({"webhook_secret": problem})

    def webhook_secret_replace(self, new: str, *, now: datetime | None = None) -> None:
        """Set a new webhook secret; the one it replaces stays accepted for
        ``WEBHOOK_SECRET_GRACE_HOURS``, so deliveries the store signed before the switch still
        pass. Clearing the secret (``""``) ends any grace window too: a channel whose secret
        was removed accepts no signature at all. The caller saves."""
        if new == self.webhook_secret:
            return
        if not new:
            self.previous_webhook_secret, self.previous_secret_expires_at = "", None
        elif self.webhook_secret:
            now = now or timezone.now()
            self.previous_webhook_secret = self.webhook_secret
            self.previous_secret_expires_at = now + timedelta(
                hours=settings.WEBHOOK_SECRET_GRACE_HOURS
            )
        self.webhook_secret = new

    def previous_secret_accepted(self, *, now: datetime | None = None) -> str:
        """The previous webhook secret while its grace window lasts, else ``""``."""
        expires = self.previous_secret_expires_at
        if not self.previous_webhook_secret or expires is None:
            return ""
        return self.previous_webhook_secret if (now or timezone.now()) < expires else ""

    def clean_fields(self, exclude: Collection[str] | None = None) -> None:
        """The field checks, and the outbound URL guard's policy for the API base URL and the
        credentials' URLs: a channel cannot be saved pointing at an address we never call."""
        errors: dict[str, Any] = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        skip = set(exclude or ()) | set(errors)
        for name in ("api_base_url", "tracking_callback_url"):
            value = getattr(self, name)
            if name not in skip and value:
                problem = integrations.url_problem(value)
                if problem:
                    errors[name] = [ValidationError(f"Refused: {problem}", code="url_refused")]
        if "credentials" not in skip:
            problems = credential_url_problems(self.credentials)
            if problems:
                errors["credentials"] = [ValidationError(p, code="url_refused") for p in problems]
        if errors:
            raise ValidationError(errors)


class SkuMapping(models.Model):
    """A channel's own product reference (variant id, ASIN, seller SKU) -> our SKU."""

    channel = models.ForeignKey(SalesChannel, on_delete=models.CASCADE, related_name="sku_mappings")
    external_ref = models.CharField(
        max_length=100, help_text="Variant id, ASIN or seller SKU as the channel sends it."
    )
    product = models.ForeignKey("orders.Product", on_delete=models.PROTECT, related_name="mappings")

    class Meta:
        ordering = ["channel", "external_ref"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_ref"], name="sku_mapping_unique_per_channel"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel.slug}:{self.external_ref} -> {self.product.sku}"


class TaxCodeMapping(models.Model):
    """A channel's tax line title (``State Tax``, ``VAT 20%``) -> our internal tax code."""

    channel = models.ForeignKey(SalesChannel, on_delete=models.CASCADE, related_name="tax_codes")
    channel_tax = models.CharField(max_length=100)
    tax_code = models.CharField(max_length=32)

    class Meta:
        ordering = ["channel", "channel_tax"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "channel_tax"], name="tax_code_mapping_unique_per_channel"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel_tax} -> {self.tax_code}"


class InboundStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    DUPLICATE = "duplicate", "Duplicate (nothing new)"
    QUARANTINED = "quarantined", "Quarantined"
    REPLAYED = "replayed", "Replayed"


class InboundSource(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    POLL = "poll", "Poll"
    FILE = "file", "File import"


class InboundEvent(FSMRowMixin, models.Model):
    """The inbox: every accepted delivery, stored raw before anything else happens."""

    channel = models.ForeignKey(SalesChannel, on_delete=models.PROTECT, related_name="events")
    source = models.CharField(
        max_length=8, choices=InboundSource.choices, default=InboundSource.WEBHOOK
    )
    topic = models.CharField(max_length=64, blank=True)
    api_version = models.CharField(max_length=32, blank=True)
    dedup_key = models.CharField(max_length=200)
    headers = models.JSONField(default=dict, blank=True)
    raw_body = models.BinaryField()
    body_bytes = models.PositiveIntegerField(default=0)
    fetched = models.JSONField(
        null=True, blank=True, help_text="What was pulled from the channel's API for this event."
    )
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    correlation_id = models.CharField(max_length=64, db_index=True)
    status = FSMField(
        max_length=16, choices=InboundStatus.choices, default=InboundStatus.RECEIVED,
        protected=True, db_index=True,
    )  # fmt: skip
    errors = models.JSONField(default=list, blank=True)
    order = models.ForeignKey(
        "orders.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    attempts = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    duplicate_deliveries = models.PositiveIntegerField(default=0)
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=32, blank=True, help_text="What processing did.")

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "dedup_key"], name="inbound_event_dedup_key_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["status", "received_at"],
                condition=Q(status="received"),
                name="inbound_event_pending_idx",
            )
        ]
        permissions = [
            ("replay_inboundevent", "Can replay a quarantined inbound event"),
            ("view_raw_payload", "Can view raw webhook bodies and headers"),
        ]

    def __str__(self) -> str:
        return f"{self.channel.slug} {self.topic} #{self.pk}"

    # What mark_processed and mark_duplicate set: inbox processing writes exactly these in its
    # one conditional UPDATE (channels.services.inbound_event_process).
    FINAL_STATE_FIELDS = ("status", "order_id", "outcome", "errors", "processed_at", "lease_until")

    @transition(field=status, source=InboundStatus.RECEIVED, target=InboundStatus.PROCESSED)
    def mark_processed(self, *, order_id: int | None, outcome: str) -> None:
        self.order_id = order_id
        self.outcome = outcome
        self.errors = []
        self.processed_at = timezone.now()
        self.lease_until = None

    @transition(field=status, source=InboundStatus.RECEIVED, target=InboundStatus.DUPLICATE)
    def mark_duplicate(self, *, order_id: int | None) -> None:
        self.order_id = order_id
        self.outcome = "unchanged"
        self.processed_at = timezone.now()
        self.lease_until = None

    @transition(field=status, source=[InboundStatus.RECEIVED, InboundStatus.QUARANTINED],
                target=InboundStatus.QUARANTINED)  # fmt: skip
    def quarantine(self, *, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        self.processed_at = timezone.now()
        self.lease_until = None

    @transition(field=status, source=InboundStatus.QUARANTINED, target=InboundStatus.REPLAYED)
    def mark_replayed(self, *, order_id: int | None, outcome: str) -> None:
        self.order_id = order_id
        self.outcome = outcome
        self.errors = []
        self.processed_at = timezone.now()
