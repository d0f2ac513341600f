"""Resolving a channel's product and tax references to ours.

One round trip per order, whatever its number of lines: the channel's explicit SKU mappings,
the catalogue products named by the channel's SKUs and (when the order has tax lines) the
channel's tax code mappings come back from one ``UNION ALL`` query, each row tagged with the
table it came from.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.db.models import CharField, F, QuerySet, Value

from channels.models import SkuMapping, TaxCodeMapping
from orders.models import Product

MAPPED, CATALOGUE, TAX = "mapping", "catalogue", "tax"


def _references(
    *, channel_id: int, refs: Collection[str], channel_skus: Collection[str],
    tax_titles: Collection[str] = (),
) -> tuple[dict[str, str], set[str], dict[str, str]]:  # fmt: skip
    """(mapped ref -> our SKU, catalogue SKUs among the channel's SKUs, tax title -> code)."""
    wanted = sorted({r for r in [*refs, *channel_skus] if r})
    skus = sorted({s for s in channel_skus if s})
    titles = sorted({t for t in tax_titles if t})
    tag = lambda name: Value(name, output_field=CharField())  # noqa: E731
    parts: list[QuerySet[Any, tuple[str, str, str]]] = []
    if wanted:
        parts.append(
            SkuMapping.objects.filter(channel_id=channel_id, external_ref__in=wanted)
            .annotate(src=tag(MAPPED), key=F("external_ref"), value=F("product__sku"))
            .values_list("src", "key", "value")
        )
    if skus:
        parts.append(
            Product.objects.filter(sku__in=skus)
            .annotate(src=tag(CATALOGUE), key=F("sku"), value=F("sku"))
            .values_list("src", "key", "value")
        )
    if titles:
        parts.append(
            TaxCodeMapping.objects.filter(channel_id=channel_id, channel_tax__in=titles)
            .annotate(src=tag(TAX), key=F("channel_tax"), value=F("tax_code"))
            .values_list("src", "key", "value")
        )
    mapped: dict[str, str] = {}
    catalogue: set[str] = set()
    tax_codes: dict[str, str] = {}
    if not parts:
        return mapped, catalogue, tax_codes
    query = parts[0].order_by() if len(parts) == 1 else parts[0].order_by().union(
        *(p.order_by() for p in parts[1:]), all=True
    )  # fmt: skip
    for src, key, value in query:
        if src == MAPPED:
            mapped[key] = value
        elif src == CATALOGUE:
            catalogue.add(key)
        else:
            tax_codes[key] = value
    return mapped, catalogue, tax_codes


def resolve_sku_map(*, channel_id: int, refs: list[str], channel_skus: list[str]) -> dict[str, str]:
    """Our SKU for each reference that resolves: explicit mapping first (variant id, ASIN,
    seller SKU), else a catalogue product whose SKU is the channel's SKU as it stands."""
    mapped, catalogue, _ = _references(channel_id=channel_id, refs=refs, channel_skus=channel_skus)
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
    tax_lines = [
        *canonical.get("tax_lines", []),
        *(t for ln in lines for t in ln.get("tax_lines", [])),
    ]
    mapped, catalogue, tax_codes = _references(
        channel_id=channel_id,
        refs=[ln.get("variant_ref", "") for ln in lines],
        channel_skus=[ln.get("channel_sku", "") for ln in lines],
        tax_titles=[str(t.get("title") or "") for t in tax_lines],
    )
    resolved = {**{s: s for s in catalogue}, **mapped}
    unmapped = []
    for line in lines:
        line["sku"] = resolve_line_sku(
            resolved,
            variant_ref=line.get("variant_ref", ""),
            channel_sku=line.get("channel_sku", ""),
        )
        if not line["sku"]:
            unmapped.append(line.get("variant_ref") or line.get("channel_sku") or "(none)")
    for tax_line in tax_lines:
        code = tax_codes.get(tax_line.get("title", ""))
        if code:
            tax_line["tax_code"] = code
    return unmapped
