"""Sales channels: where orders come from. Ingestion (inbox, adapters) builds on these."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ChannelKind(models.TextChoices):
    SHOPIFY = "shopify", "Shopify"
    BIGCOMMERCE = "bigcommerce", "BigCommerce"
    AMAZON = "amazon", "Amazon Seller Central"
    WOOCOMMERCE = "woocommerce", "WooCommerce"
    CUSTOM = "custom", "Custom storefront"


class SalesChannel(models.Model):
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    default_currency = models.CharField(max_length=3, default="USD")
    rounding = models.CharField(
        max_length=16,
        default="ROUND_HALF_UP",
        help_text="How this channel rounds amounts to the currency's minor units.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
