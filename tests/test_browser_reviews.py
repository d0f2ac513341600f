"""The review workspace in a real browser (Debian's chromium through Playwright, against
live_server): a reviewer works three cases from the keyboard alone — opens the first from the
queue, approves it, rejects the next with a reason (an empty one is refused), escalates the
third with a note — and each decision opens the next case in queue order. Customer service
sees the same case read-only. Screenshots: var/screenshots/review_*.png. Run alone with
``pytest -m browser``."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from orders.models import OrderEvent
from reviews.models import ReviewCase
from tests import test_browser
from tests.factories import make_user
from tests.fulfillment.helpers import add_warehouse, stock
from tests.reviews.helpers import order_with
from tests.test_browser import log_in, screenshot

browser = test_browser.browser
page = test_browser.page

# The full pipeline (fraud score included) runs, as in tests/reviews.
pytestmark = [pytest.mark.browser, pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


def three_cases() -> list[ReviewCase]:
    """Three high-risk orders (the channel rates them high risk), SLA due one hour apart, their
    stock held in warehouse A while they wait."""
    add_warehouse("A", name="Newark")
    stock("SKU-1", "A", 20)
    cases = []
    for n in range(3):
        order = order_with(source={"risk_level": "high"}, external_id=f"R-{n + 1}")
        assert order.status == "in_review", order.status_reason
        case = ReviewCase.objects.get(order=order)
        ReviewCase.objects.filter(pk=case.pk).update(
            sla_due_at=case.created_at + timedelta(hours=n)
        )
        cases.append(case)
    return cases


def case_url(live_server, case: ReviewCase) -> re.Pattern[str]:
    return re.compile(re.escape(f"{live_server.url}/admin/work/reviews/{case.pk}/") + "$")


def test_a_reviewer_works_three_cases_from_the_keyboard(page, live_server):
    from playwright.sync_api import expect

    first, second, third = three_cases()
    make_user("rita", "reviewer")
    log_in(page, live_server, "rita")

    page.goto(f"{live_server.url}/admin/work/reviews/")
    queue = page.locator("#review-queue tbody tr")
    expect(queue).to_have_count(3)
    expect(queue.first.locator("td.order")).to_have_text("R-1")
    expect(page.locator("#shortcuts")).to_contain_text("next case")
    page.keyboard.press("j")
    expect(queue.first).to_have_class("cursor")
    screenshot(page, "review_queue")
    page.keyboard.press("o")
    expect(page).to_have_url(case_url(live_server, first))

    # The whole context on the page, without clicking further.
    expect(page.locator("#signals")).to_contain_text("fraud analysis rates the order risky")
    for section in ("#history", "#address-table", "#delivery", "#reservation-table", "#timeline"):
        expect(page.locator(section)).to_be_visible()
    expect(page.locator("#timeline-table")).to_contain_text("review_opened")
    expect(page.locator("#reservation-table")).to_contain_text("A (Newark)")
    screenshot(page, "review_case")

    # a: approve (claims the open case in the same step); the next case opens.
    page.keyboard.press("a")
    expect(page).to_have_url(case_url(live_server, second))
    expect(page.locator(".messagelist .success")).to_have_text(
        f"Case {first.pk} (order R-1) approved."
    )

    # r: the reason field takes the focus; an empty reason is refused, a typed one rejects.
    page.keyboard.press("r")
    expect(page.locator("#id_reject_note")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(case_url(live_server, second))
    assert ReviewCase.objects.get(pk=second.pk).status == "open"
    page.keyboard.type("Card reported stolen by the bank")
    screenshot(page, "review_reject")
    page.keyboard.press("Enter")
    expect(page).to_have_url(case_url(live_server, third))
    expect(page.locator(".messagelist .success")).to_have_text(
        f"Case {second.pk} (order R-2) rejected."
    )

    # e: the same for escalating.
    page.keyboard.press("e")
    expect(page.locator("#id_escalate_note")).to_be_focused()
    page.keyboard.type("Large repeat buyer, needs a senior look")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/admin/work/reviews/$"))
    expect(page.locator(".messagelist")).to_contain_text("No more cases in this queue.")
    expect(page.locator("#review-queue tbody tr")).to_have_count(1)  # the escalated one stays
    screenshot(page, "review_queue_after")

    decided = {c.pk: (c.status, c.decision_note) for c in ReviewCase.objects.all()}
    assert decided == {
        first.pk: ("approved", ""),
        second.pk: ("rejected", "Card reported stolen by the bank"),
        third.pk: ("escalated", "Large repeat buyer, needs a senior look"),
    }
    trail = set(OrderEvent.objects.filter(field="review_case").values_list("action", "actor_id"))
    assert trail == {("review_started", "rita"), ("review_approved", "rita"),
                     ("review_rejected", "rita"), ("review_escalated", "rita")}  # fmt: skip


def test_customer_service_reads_a_case_without_decisions(page, live_server):
    from playwright.sync_api import expect

    [case, *_] = three_cases()
    make_user("carol", "customer_service")
    log_in(page, live_server, "carol")
    page.goto(f"{live_server.url}/admin/work/reviews/{case.pk}/")
    expect(page.locator("#read-only")).to_be_visible()
    expect(page.locator("#approve-form")).to_have_count(0)
    page.keyboard.press("a")  # no decision form: nothing happens
    expect(page).to_have_url(case_url(live_server, case))
    screenshot(page, "review_case_read_only")
    assert ReviewCase.objects.get(pk=case.pk).status == "open"
