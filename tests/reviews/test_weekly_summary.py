"""The weekly leadership summary (issue 14, item 5): ``weekly_summary [--week] [--email]``, the
Monday beat job, the page it is kept as; its KPIs equal the KPI API's for the same week, and a
second run gives the same figures."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_celery_beat.tzcrontab import TzAwareCrontab

from orders.actors import Actor
from orders.errors import InvalidInput
from orders.models import Incident, IncidentCategory
from orders.services import incident_raise
from reviews.models import ReviewCase, WeeklySummary
from reviews.services import review_case_approve, review_case_start
from reviews.summary import Week, weekly_summary_build
from tests.factories import make_order, make_user
from tests.fulfillment.outbox.test_dead_and_retry import kill, wms  # noqa: F401 (fixture)
from tests.reviews.helpers import paid_order

pytestmark = pytest.mark.django_db


def local_today() -> date:
    return timezone.now().astimezone(ZoneInfo(django_settings.TIME_ZONE)).date()


def this_week() -> Week:
    return Week.containing()


# --- weeks ----------------------------------------------------------------------------------------
def test_an_iso_week_runs_monday_to_monday_in_the_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    week = Week.parse("2026-w48")

    assert (week.label, week.monday, week.sunday) == ("2026-W48", date(2026, 11, 23),
                                                      date(2026, 11, 29))  # fmt: skip
    assert week.start.isoformat() == "2026-11-23T05:00:00+00:00"  # midnight in New York
    assert week.end.isoformat() == "2026-11-30T05:00:00+00:00"
    assert Week.parse("2021-W01").monday == date(2021, 1, 4)  # ISO: the week of 4 January
    # On Monday 30 November (local) the last complete week is W48.
    monday_morning = Week.parse("2026-W49").start + timedelta(hours=7)
    assert Week.last_complete(monday_morning).label == "2026-W48"


@pytest.mark.parametrize("text", ["2026-48", "2026-W54", "W48", "", "2026-W0"])
def test_a_week_that_is_no_iso_week_is_refused_by_name(text):
    with pytest.raises(InvalidInput) as refused:
        Week.parse(text)
    assert "use YYYY-Www, e.g. 2026-W48" in str(refused.value)


def test_the_command_refuses_a_bad_week_and_a_bad_address(db):
    with pytest.raises(CommandError, match="is not an ISO week"):
        call_command("weekly_summary", "--week", "2026-13")
    with pytest.raises(CommandError, match="'boss' is not an email address"):
        call_command("weekly_summary", "--week", "2026-W48", "--email", "boss")
    assert not WeeklySummary.objects.exists()


def test_the_beat_job_runs_on_monday_at_seven_in_the_time_zone():
    entry = django_settings.CELERY_BEAT_SCHEDULE["reviews-weekly-summary"]
    schedule = entry["schedule"]

    assert entry["task"] == "reviews.weekly_summary"
    assert isinstance(schedule, TzAwareCrontab)
    assert (schedule.hour, schedule.minute, schedule.day_of_week) == ({7}, {0}, {1})
    assert str(schedule.tz) == django_settings.TIME_ZONE


# --- the figures ----------------------------------------------------------------------------------
def failures() -> None:
    """This week: 3 occurrences of an unmapped SKU, 2 of a bad address, 1 schema error, 1 other
    and a privacy request (work, no failure); the week before: 5 unmapped SKUs."""
    for _ in range(3):
        incident_raise(category=IncidentCategory.SKU_UNMAPPED, summary="x", key="SKU-A")
    for n in range(2):
        incident_raise(category=IncidentCategory.ADDRESS_FORMAT_INVALID, summary="x", key=f"a{n}")
    incident_raise(category=IncidentCategory.SCHEMA_INVALID, summary="x")
    incident_raise(category=IncidentCategory.OTHER, summary="x")
    incident_raise(category=IncidentCategory.PRIVACY_REQUEST, summary="x")
    old = incident_raise(category=IncidentCategory.SKU_UNMAPPED, summary="x", key="SKU-OLD")
    Incident.objects.filter(pk=old.pk).update(
        occurrence_count=5, first_seen_at=old.first_seen_at - timedelta(days=7)
    )


def test_the_top_three_failure_categories_with_the_week_before_and_per_day(db):
    failures()
    week = this_week()

    summary = weekly_summary_build(week=week)

    top = summary.figures["top_failures"]
    assert [(t["category"], t["occurrences"], t["previous"], t["change"]) for t in top] == [
        ("sku_unmapped", 3, 5, -2), ("address_format_invalid", 2, 0, 2), ("other", 1, 0, 1),
    ]  # fmt: skip
    assert top[0]["per_day"] == [3 if day == local_today() else 0 for day in week.days]
    assert "1. SKU unmapped: 3 (down 2 on the week before: 5)" in summary.text
    assert "2. Address format invalid: 2 (up 2 on the week before: 0)" in summary.text


def test_dead_actions_and_the_review_sla_of_the_week(wms, settings):  # noqa: F811
    order = make_order(paid=True, pipeline=False)
    kill(order)
    reviewer = Actor.for_user(make_user("rita", "reviewer"))
    in_time, late, undecided = (ReviewCase.objects.get(order=paid_order(country="DE"))
                                for _ in range(3))  # fmt: skip
    week = this_week()
    # All three due this week: one decided before its due time, one after, one not at all.
    soon = min(timezone.now() + timedelta(minutes=5), week.end - timedelta(seconds=1))
    ReviewCase.objects.filter(pk__in=[in_time.pk, undecided.pk]).update(sla_due_at=soon)
    passed = max(week.start, timezone.now() - timedelta(minutes=1))
    ReviewCase.objects.filter(pk=late.pk).update(sla_due_at=passed)
    for case in (in_time, late):
        review_case_start(case_id=case.pk, actor=reviewer)
        review_case_approve(case_id=case.pk, actor=reviewer)

    figures = weekly_summary_build(week=week).figures

    assert figures["dead_actions"] == {"total": 1, "per_target": {"rest": 1}}
    assert figures["review_sla"] == {"due": 3, "met": 1, "met_percent": "33.33"}


# --- the command, the email, the page -------------------------------------------------------------
def test_the_command_prints_emails_and_keeps_the_summary_and_a_rerun_changes_nothing(
    db, settings, tmp_path, capsys
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    failures()
    make_order()
    week = this_week()

    call_command("weekly_summary", "--week", week.label, "--email", "ceo@example.com",
                 "--email", "ops-lead@example.com")  # fmt: skip
    out = capsys.readouterr().out
    first = WeeklySummary.objects.get(week=week.label)
    call_command("weekly_summary", "--week", week.label, "--no-email")
    again = WeeklySummary.objects.get(week=week.label)

    assert f"Automation health, week {week.label}" in out
    assert "Orders received: 1" in out and "Top failure categories:" in out
    assert "Emailed to ceo@example.com, ops-lead@example.com." in out
    assert WeeklySummary.objects.count() == 1 and again.pk == first.pk
    assert again.figures == first.figures
    [mail] = list(Path(tmp_path / "mail").iterdir())
    message = mail.read_text()
    assert "To: ceo@example.com, ops-lead@example.com" in message
    assert f"Subject: Automation health {week.label}:" in message
    assert "Content-Type: text/html" in message and "Content-Type: text/plain" in message
    assert first.emailed_to == ["ceo@example.com", "ops-lead@example.com"]


def test_the_summarys_kpis_equal_the_kpi_apis_for_the_same_week(db, api_client):
    for _ in range(3):
        make_order(pipeline=False)
    touched = make_order(pipeline=False)
    from orders.services import order_transition

    order_transition(order_id=touched.pk, transition="hold", reason="customer called",
                     actor=Actor.for_user(make_user("carol", "customer_service")))  # fmt: skip
    week = this_week()
    summary = weekly_summary_build(week=week)
    api_client.force_authenticate(make_user("olga", "ops_admin"))

    answer = api_client.get("/api/v1/kpis/", {"from": week.monday.isoformat(),
                                              "to": week.sunday.isoformat()})  # fmt: skip

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert json.loads(json.dumps(summary.figures["kpis"]["overall"])) == body["overall"]
    assert summary.figures["kpis"]["overall"]["orders_received"] == 4
    assert summary.figures["kpis"]["overall"]["orders_no_touch"] == 3


@pytest.mark.parametrize(
    ("role", "status"),
    [("ops_admin", 200), ("finance", 200), ("customer_service", 403), ("reviewer", 403)],
)
def test_the_summary_page_is_for_those_who_see_the_kpis(client, role, status):
    summary = weekly_summary_build(week=this_week())
    client.force_login(make_user(f"u-{role}", role))

    page = client.get(f"/admin/work/summaries/{summary.week}/")
    listing = client.get("/admin/work/summaries/")
    latest = client.get("/admin/work/summaries/latest/")

    assert (page.status_code, listing.status_code) == (status, status)
    assert latest.status_code == (302 if status == 200 else 403)
    if status == 200:
        assert latest["Location"] == f"/admin/work/summaries/{summary.week}/"
    if status == 200:
        assert "Without a human touch" in page.content.decode()
        assert summary.week in listing.content.decode()
