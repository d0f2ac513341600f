"""Least privilege on every screen (issue 14, item 6): each work screen answers 200 to the roles
whose work it is and 403 to every other role (a visitor is sent to the login page), and no screen
shows finance or operations a street line or a phone number.

The matrix is written out here, not derived from ``orders.roles``: a change of who may open what
has to change this table on purpose."""

from __future__ import annotations

import pytest
from django.urls import reverse

from orders.models import Order
from reviews.models import ReviewCase
from reviews.summary import Week, weekly_summary_build
from tests.factories import make_order, make_user
from tests.reviews.helpers import paid_order

pytestmark = [pytest.mark.django_db, pytest.mark.pipeline]

ROLES = ["customer_service", "reviewer", "finance", "ops_admin", "data_steward"]
STREET, PHONE, BILLING_STREET = "12 Babbage Lane", "+1 217 555 0199", "400 Ledger Road"

# screen -> the roles that may open it
SCREENS: dict[str, set[str]] = {
    "review_queue": {"reviewer", "customer_service", "ops_admin"},
    "review_case": {"reviewer", "customer_service", "ops_admin"},
    "incidents": {"customer_service", "ops_admin"},
    "incidents_category": {"customer_service", "ops_admin"},
    "dashboard": {"ops_admin"},
    "kpis": {"ops_admin", "finance"},
    "summaries": {"ops_admin", "finance"},
    "summary": {"ops_admin", "finance"},
    "finance_period": {"finance", "ops_admin"},
    "finance_payouts": {"finance", "ops_admin"},
}


@pytest.fixture
def world() -> dict[str, str]:
    """A case in review whose addresses have a street and a phone, an order held with an
    incident, a weekly summary; the URL of every screen."""
    address = {"name": "Ada Lovelace", "line1": STREET, "line2": "Flat 3", "city": "Berlin",
               "postal_code": "10117", "country_code": "DE", "phone": PHONE}  # fmt: skip
    flagged = paid_order(country="DE")
    Order.objects.filter(pk=flagged.pk).update(
        shipping_address=address, billing_address={**address, "line1": BILLING_STREET}
    )
    case = ReviewCase.objects.get(order=flagged)
    held = make_order()  # no stock anywhere: held with an incident
    assert held.status == "on_hold"
    category = held.incidents.values_list("category", flat=True).first()
    summary = weekly_summary_build(week=Week.containing())
    return {
        "review_queue": reverse("work:reviews"),
        "review_case": reverse("work:review_case", args=[case.pk]),
        "incidents": reverse("work:incidents"),
        "incidents_category": f"{reverse('work:incidents')}?category={category}",
        "dashboard": reverse("work:dashboard"),
        "kpis": reverse("work:kpis"),
        "summaries": reverse("work:summaries"),
        "summary": reverse("work:summary", args=[summary.week]),
        "finance_period": reverse("finance:period"),
        "finance_payouts": reverse("finance:payouts"),
    }


def test_every_screen_is_in_the_matrix(world):
    assert set(world) == set(SCREENS)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_opens_its_screens_and_gets_403_on_the_others(client, world, role):
    client.force_login(make_user(f"u-{role}", role))

    answers = {screen: client.get(url).status_code for screen, url in world.items()}

    assert answers == {screen: 200 if role in allowed else 403
                       for screen, allowed in SCREENS.items()}  # fmt: skip


def test_a_visitor_is_sent_to_the_login_page_from_every_screen(client, world):
    for url in world.values():
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url


@pytest.mark.parametrize("role", ["finance", "ops_admin"])
def test_finance_and_operations_see_no_street_line_or_phone_on_any_screen(client, world, role):
    client.force_login(make_user(f"u-{role}", role))

    for screen, url in world.items():
        if role not in SCREENS[screen]:
            continue
        html = client.get(url).content.decode()
        assert STREET not in html and BILLING_STREET not in html and PHONE not in html, screen


def test_the_reviewer_sees_both_addresses_whole_on_the_case(client, world):
    client.force_login(make_user("rita", "reviewer"))

    html = client.get(world["review_case"]).content.decode()

    assert STREET in html and BILLING_STREET in html
