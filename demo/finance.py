"""The demo's finance period: last month of its own Shopify channel (``demo-finance``), generated
by ``reconciliation.generator`` (~40 orders, the vendors' files under ``VAR_DIR/demo-finance``),
imported through the real importers and reconciled, so the finance user opens a month with a
few explained variances (fees, a chargeback, a reserve, a gift card, a duplicated invoice...)
and exactly one unexplained item to resolve: a payout the bank never received.

Safe to run twice: the generator takes the orders it made before, writes the same files, and the
importers keep each row once; reconciling again updates the same items (a person's resolution
kept).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from reconciliation.generator import Generated, generate_month, import_month
from reconciliation.models import Category, Comparison, VarianceItem
from reconciliation.services import Report, reconcile, table_lines

SLUG = "demo-finance"
ORDERS = 40


def demo_period() -> str:
    """Last month (the one finance closes now)."""
    first = timezone.now().date().replace(day=1)
    return f"{first - timedelta(days=1):%Y-%m}"


def finance_month_play(*, write: Callable[[str], None]) -> tuple[Generated, Report]:
    period = demo_period()
    out = Path(settings.VAR_DIR) / "demo-finance" / period
    generated = generate_month(period=period, orders=ORDERS, out=out, seed=1, slug=SLUG,
                               unexplained=True)  # fmt: skip
    runs = import_month(generated)
    new = sum(r.rows_new for r in runs)
    write(f"  {period} on {SLUG}: {ORDERS} orders, {len(runs)} files imported ({new} new rows)")
    report = reconcile(period=generated.period, channel=generated.channel, do_import=False)
    for line in table_lines(report):
        write(f"  {line}")
    open_items = VarianceItem.objects.filter(
        period=period, channel=generated.channel, category=Category.UNEXPLAINED,
        resolved_by__isnull=True,
    )  # fmt: skip
    for item in open_items:
        write(f"  to resolve: [{Comparison(item.comparison).label}] {item.description}")
    return generated, report
