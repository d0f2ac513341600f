"""Resolving a channel's product and tax references to ours."""

from __future__ import annotations

from typing import Any

from channels.models import SkuMapping, TaxCodeMapping
from orders.models import Product


def resolve_sku_map(*, channel_id: int, refs: list[str], channel_skus: list[str]) -> dict[str, str]:
    """Our SKU for each reference that resolves: explicit mapping first (variant id, ASIN,
    seller SKU), else a catalogue product whose SKU is the channel's SKU as it stands."""
    wanted = {r for r in [*refs, *channel_skus] if r}
    mapped = dict(
        SkuMapping.objects.filter(channel_id=channel_id, external_ref__in=wanted).values_list(
            "external_ref", "product__sku"
        )
    )
    catalogue = set(
        Product.objects.filter(sku__in=[s for s in channel_skus if s]).values_list("sku", flat=True)
    )
    return {**{s: s for s in catalogue}, **mapped}


def resolve_line_sku(resolved: dict[str, str], *, variant_ref: str, channel_sku: str) -> str:
    """Mapping of the variant ref, then of the channel SKU, then the identical catalogue SKU."""
    for key in (variant_ref, channel_sku):
        if key and key in resolved:
            return resolved[key]
    return ""


def resolve_canonical(*, channel_id: int, canonical: dict[str, Any]) -> list[str]:
    """Fill ``sku`` on each line and ``tax_code`` on each tax line; return unmapped refs."""
    lines = canonical["lines"]
    resolved = resolve_sku_map(
        channel_id=channel_id,
        refs=[ln.get("variant_ref", "") for ln in lines],
        channel_skus=[ln.get("channel_sku", "") for ln in lines],
    )
    unmapped = []
    for line in lines:
        line["sku"] = resolve_line_sku(
            resolved,
            variant_ref=line.get("variant_ref", ""),
            channel_sku=line.get("channel_sku", ""),
        )
        if not line["sku"]:
            unmapped.append(line.get("variant_ref") or line.get("channel_sku") or "(none)")
    tax_codes = dict(
        TaxCodeMapping.objects.filter(channel_id=channel_id).values_list("channel_tax", "tax_code")
    )
    for tax_line in [
        *canonical.get("tax_lines", []),
        *(t for ln in lines for t in ln.get("tax_lines", [])),
    ]:
        code = tax_codes.get(tax_line.get("title", ""))
        if code:
            tax_line["tax_code"] = code
    return unmapped
