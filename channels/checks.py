"""Checks the channels app adds to the validation pipeline."""

from __future__ import annotations

from channels.catalogue import resolve_line_sku, resolve_sku_map
from orders.actors import Actor
from orders.models import IncidentCategory, Order, OrderLine, Severity
from orders.services import order_lines_assign_skus
from orders.validation import FAILED, CheckResult


class SkuMappedCheck:
    """Every line names one of our SKUs. Lines that came in unmapped are looked up again (a
    mapping may have been added since); what still does not resolve holds the order."""

    name = "sku_mapped"

    def run(self, order: Order) -> CheckResult:
        lines = [ln for ln in order.lines.all() if not ln.sku]
        if not lines:
            return CheckResult.passed()
        resolved = resolve_sku_map(
            channel_id=order.channel_id,
            refs=[ln.variant_ref for ln in lines],
            channel_skus=[ln.channel_sku for ln in lines],
        )
        found = {
            ln.pk: resolve_line_sku(
                resolved, variant_ref=ln.variant_ref, channel_sku=ln.channel_sku
            )
            for ln in lines
        }
        order_lines_assign_skus(
            order_id=order.pk, skus={k: v for k, v in found.items() if v},
            actor=Actor.system("sku_mapping"),
        )  # fmt: skip
        for line in lines:  # the checks after this one read the lines the pipeline loaded
            if found[line.pk]:
                line.sku = found[line.pk]
        missing = sorted(
            {ln.variant_ref or ln.channel_sku or f"line {ln.line_no}" for ln in lines
             if not found[ln.pk]}
        )  # fmt: skip
        if not missing:
            return CheckResult.passed(resolved=len(found))
        # Name what the channel sent, both its SKU and its variant: whoever adds the mapping
        # needs to recognise the product, and a bare variant id says nothing to a person.
        still = sorted((ln for ln in lines if not found[ln.pk]), key=lambda ln: ln.line_no)
        labels = list(dict.fromkeys(unmapped_line_label(ln) for ln in still))  # once each
        unmapped = [
            {"line_no": ln.line_no, "channel_sku": ln.channel_sku, "variant_ref": ln.variant_ref,
             "label": unmapped_line_label(ln)}
            for ln in still
        ]  # fmt: skip
        return CheckResult(
            outcome=FAILED,
            message=f"No SKU mapping for {', '.join(labels)}",
            incident_category=IncidentCategory.SKU_UNMAPPED,
            severity=Severity.MEDIUM,
            key="skus",
            # "unmapped" (the references to map) is kept as it was for whoever reads it.
            details={"unmapped": missing, "lines": unmapped},
        )


def unmapped_line_label(line: OrderLine) -> str:
    """``"<channel SKU> (variant <id>)"``, or whichever of the two the channel sent."""
    if line.channel_sku and line.variant_ref:
        return f"{line.channel_sku} (variant {line.variant_ref})"
    if line.channel_sku:
        return line.channel_sku
    if line.variant_ref:
        return f"variant {line.variant_ref}"
    return f"line {line.line_no} (no SKU, no variant)"
