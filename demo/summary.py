"""The demo's weekly leadership summary: this week's so far (the demo's orders came in today),
built and emailed as the Monday beat job does for the week before (``reviews.summary``)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from reviews.summary import Week, weekly_summary_build, weekly_summary_send

LEADERSHIP = "leadership@demo.invalid"


def weekly_summary_play(*, write: Callable[[str], object]) -> None:
    summary = weekly_summary_build(week=Week.containing())
    weekly_summary_send(summary=summary, to=[LEADERSHIP])
    write(f"  {summary.subject}")
    write(f"  emailed to {LEADERSHIP} (in {settings.EMAIL_FILE_PATH}); the page: "
          f"{settings.PUBLIC_BASE_URL}/admin/work/summaries/{summary.week}/")  # fmt: skip
