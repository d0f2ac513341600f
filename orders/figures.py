"""Figures one higher app offers to the reports of another, through a registry (the layers
forbid ``reviews`` to import ``reconciliation``): reconciliation registers its variance from
its ``ready()``, and the KPIs (``reviews.kpis``) and the weekly summary read it from here.

With nothing registered (reconciliation not installed) there is no variance: an empty list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class VarianceFigure:
    """One channel's variance in one currency over some days."""

    channel: str
    currency: str
    sales: Decimal
    unexplained: Decimal
    variance_percent: Decimal | None


# (first day, last day, both included; a channel's id or None for all) -> figures
VarianceProvider = Callable[[date, date, int | None], list[VarianceFigure]]
_variance: list[VarianceProvider] = []


def register_variance(provider: VarianceProvider) -> None:
    """Offer the variance (one provider: registering again replaces it)."""
    _variance[:] = [provider]


def variance_for(first: date, last: date, channel_id: int | None = None) -> list[VarianceFigure]:
    if not _variance:
        return []
    return _variance[0](first, last, channel_id)
