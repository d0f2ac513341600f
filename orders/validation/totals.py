"""The totals check: the order's amounts add up."""

from __future__ import annotations

from decimal import Decimal

from orders.models import IncidentCategory, Order
from orders.validation.outcomes import FAILED, CheckResult


class TotalsCheck:
    """The order's amounts add up: lines to subtotal, allocations to totals, parts to total."""

    name = "totals"

    def run(self, order: Order) -> CheckResult:
        lines = list(order.lines.all())
        if not lines:
            return CheckResult(
                outcome=FAILED, message="The order has no lines",
                incident_category=IncidentCategory.SCHEMA_INVALID, key=self.name,
            )  # fmt: skip
        sums = {
            "subtotal": (sum((ln.gross for ln in lines), Decimal(0)), order.subtotal),
            "discount_total": (
                sum((ln.discount_allocation for ln in lines), Decimal(0)),
                order.discount_total,
            ),
            "tax_total": (
                sum((ln.tax_allocation for ln in lines), order.shipping_tax),
                order.tax_total,
            ),
            "total": (order.computed_total, order.total),
        }
        mismatches = {
            name: {"expected": str(stated), "computed": str(computed)}
            for name, (computed, stated) in sums.items()
            if computed != stated
        }
        if mismatches:
            return CheckResult(
                outcome=FAILED,
                message="Amounts do not add up: " + ", ".join(sorted(mismatches)),
                incident_category=IncidentCategory.SCHEMA_INVALID,
                key=self.name,
                details={"mismatches": mismatches, "currency": order.currency},
            )
        return CheckResult.passed(total=str(order.total), currency=order.currency)
