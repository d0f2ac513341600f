"""Thin Celery wrappers of the human layer."""

from __future__ import annotations

from celery import shared_task

from reviews.summary import Week, recipients_default, weekly_summary_build, weekly_summary_send


@shared_task(name="reviews.weekly_summary", ignore_result=True)
def weekly_summary() -> dict[str, object]:
    """Monday 07:00 in TIME_ZONE (beat): last week's summary, kept and emailed to
    ``WEEKLY_SUMMARY_RECIPIENTS``. Safe to run twice: the same figures, one row."""
    summary = weekly_summary_build(week=Week.last_complete())
    sent = weekly_summary_send(summary=summary, to=recipients_default())
    return {"week": summary.week, "emailed": sent}
