"""Thin Celery wrappers of reconciliation."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from reconciliation.services import reconcile
from reconciliation.variance import Period


@shared_task(name="reconciliation.reconcile_nightly", ignore_result=True)
def reconcile_nightly() -> dict[str, str]:
    """The current month (and, in its first days, the month before: late payouts and
    deposits still land there): import what is configured, match, compute."""
    today = timezone.now().date()
    labels = [f"{today:%Y-%m}"]
    if today.day <= 7:
        first = today.replace(day=1)
        labels.insert(0, f"{(first - timedelta(days=1)):%Y-%m}")
    done = {}
    for label in labels:
        report = reconcile(period=Period.parse(label))
        done[label] = "; ".join(f"{v} {k}" for k, v in report.unexplained.items()) or "0"
    return done
