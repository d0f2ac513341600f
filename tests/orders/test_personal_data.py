"""Personal data per role (issue 10, item 7): who sees street lines, phone numbers and raw
snapshots, through the API (token and session) and the admin.

Finance sees an address reduced to name, company and locality (city, region, postal code,
country: what tax needs); customer service and reviewers see it whole (answering customers,
fraud review); operations (``ops_admin``) run the system without street lines or phones, as
finance does; raw audit snapshots are shown whole to ``data_steward`` (and superusers) only.
Every rule is a permission (``orders.view_contact_details``, ``orders.view_raw_payload``).
"""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.authtoken.models import Token

from orders.actors import Actor
from orders.models import Customer, Order
from orders.transitions import order_event_record
from tests.factories import CustomerFactory, make_order, make_user

pytestmark = pytest.mark.django_db

STREET, FLAT, PHONE = "12 Babbage Lane", "Flat 3", "+1 217 555 0199"
CUSTOMER_PHONE = "+1 217 555 0142"
FULL = {
    "name": "Ada Lovelace", "company": "Analytical Ltd", "line1": STREET, "line2": FLAT,
    "city": "Springfield", "region": "Illinois", "region_code": "IL", "postal_code": "62701",
    "country_code": "US", "phone": PHONE,
}  # fmt: skip
BILLING = {**FULL, "line1": "400 Ledger Road", "line2": "", "phone": "+1 217 555 0177"}
# What finance keeps: who (name, company) and where for tax (city, region, postal code, country).
LOCALITY_KEYS = ["name", "company", "city", "region", "region_code", "postal_code",
                 "country_code"]  # fmt: skip
HIDDEN_FROM_FINANCE = [STREET, FLAT, PHONE, "400 Ledger Road", "+1 217 555 0177", CUSTOMER_PHONE]
SNAPSHOT = {"reason": "address corrected", "shipping_address": FULL}
ROLES_WITH_CONTACT = ["customer_service", "reviewer", "data_steward"]
ROLES_WITHOUT_CONTACT = ["finance", "ops_admin"]
ALL_ROLES = ["customer_service", "reviewer", "finance", "ops_admin", "data_steward"]


@pytest.fixture
def order() -> Order:
    customer = CustomerFactory(name="Ada Lovelace", phone=CUSTOMER_PHONE)
    order = make_order(customer=customer)
    Order.objects.filter(pk=order.pk).update(shipping_address=FULL, billing_address=BILLING)
    # An audit event that carries a snapshot of an address (as a correction would).
    order_event_record(
        order_id=order.pk, action="address_corrected", actor=Actor.system("test"), data=SNAPSHOT
    )
    return Order.objects.get(pk=order.pk)


def user_with(role: str):
    return make_user(f"u-{role}", role)


def detail(api_client, order: Order) -> dict:
    response = api_client.get(f"/api/v1/orders/{order.pk}/")
    assert response.status_code == 200, response.content
    return response.json()


def snapshot_event(body: dict) -> dict:
    [event] = [e for e in body["timeline"] if e["action"] == "address_corrected"]
    return event


# --- the roles' permissions -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "contact", "raw"),
    [("customer_service", True, False), ("reviewer", True, False), ("finance", False, False),
     ("ops_admin", False, False), ("data_steward", True, True)],
)  # fmt: skip
def test_each_role_holds_the_personal_data_permissions_it_needs(role, contact, raw):
    user = user_with(role)

    assert user.has_perm("orders.view_contact_details") is contact
    assert user.has_perm("orders.view_raw_payload") is raw


# --- API ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES_WITH_CONTACT)
def test_customer_service_reviewers_and_stewards_get_the_whole_addresses(api_client, order, role):
    api_client.force_authenticate(user_with(role))

    body = detail(api_client, order)

    assert body["shipping_address"] == FULL
    assert body["billing_address"] == BILLING


@pytest.mark.parametrize("role", ROLES_WITHOUT_CONTACT)
def test_finance_and_ops_get_addresses_without_street_lines_or_phone(api_client, order, role):
    api_client.force_authenticate(user_with(role))

    body = detail(api_client, order)

    assert sorted(body["shipping_address"]) == sorted(LOCALITY_KEYS)
    assert body["shipping_address"] == {k: FULL[k] for k in LOCALITY_KEYS}
    assert body["billing_address"] == {k: BILLING[k] for k in LOCALITY_KEYS}
    text = str(body)
    assert not [value for value in HIDDEN_FROM_FINANCE if value in text]


def test_finance_is_refused_street_and_phone_with_a_token_too(api_client, order, finance_user):
    token = Token.objects.create(user=finance_user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    body = detail(api_client, order)

    assert "line1" not in body["shipping_address"] and "phone" not in body["billing_address"]
    assert body["shipping_address"]["postal_code"] == "62701"


def test_finance_is_refused_street_and_phone_with_a_session_too(api_client, order, finance_user):
    request = RequestFactory().post("/admin/login/")  # django-axes wants a real request
    assert api_client.login(request=request, username="fred", password="pw-fred")

    body = detail(api_client, order)

    assert "line1" not in body["shipping_address"] and "phone" not in body["shipping_address"]
    assert body["billing_address"]["city"] == "Springfield"


def test_a_transition_answers_with_the_same_reduced_order(api_client, order, finance_user):
    api_client.force_authenticate(finance_user)

    response = api_client.post(
        f"/api/v1/orders/{order.pk}/transition/", {"transition": "capture_payment"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert sorted(response.json()["shipping_address"]) == sorted(LOCALITY_KEYS)


def test_a_superuser_gets_everything(api_client, order):
    api_client.force_authenticate(make_user("root", superuser=True))

    body = detail(api_client, order)

    assert body["shipping_address"] == FULL
    assert snapshot_event(body)["data"] == SNAPSHOT


def test_the_data_steward_sees_an_audit_snapshot_whole(api_client, order):
    api_client.force_authenticate(user_with("data_steward"))

    assert snapshot_event(detail(api_client, order))["data"] == SNAPSHOT


@pytest.mark.parametrize("role", ["customer_service", "reviewer", "finance", "ops_admin"])
def test_other_roles_see_an_audit_snapshot_without_its_personal_data(api_client, order, role):
    api_client.force_authenticate(user_with(role))

    data = snapshot_event(detail(api_client, order))["data"]

    assert data == {"reason": "address corrected", "shipping_address": "[redacted]"}


def test_the_schema_documents_the_address_and_which_parts_need_the_permission(api_client, db):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()

    order = schema["components"]["schemas"]["OrderDetail"]["properties"]
    assert order["shipping_address"]["allOf"][0]["$ref"] == "#/components/schemas/Address"
    address = schema["components"]["schemas"]["Address"]
    assert set(address["properties"]) == {*LOCALITY_KEYS, "line1", "line2", "phone"}
    assert "required" not in address
    assert "orders.view_contact_details" in address["description"]


# --- admin --------------------------------------------------------------------------------------
def order_page(client, user, order: Order) -> str:
    client.force_login(user)
    response = client.get(reverse("admin:orders_order_change", args=[order.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("role", ROLES_WITH_CONTACT)
def test_the_order_page_shows_the_whole_address_to_those_who_need_it(client, order, role):
    page = order_page(client, user_with(role), order)

    assert STREET in page and FLAT in page and PHONE in page and "400 Ledger Road" in page


@pytest.mark.parametrize("role", ROLES_WITHOUT_CONTACT)
def test_the_order_page_shows_finance_and_ops_name_and_locality_only(client, order, role):
    page = order_page(client, user_with(role), order)

    assert not [value for value in HIDDEN_FROM_FINANCE if value in page]
    assert "Ada Lovelace" in page and "62701 Springfield" in page and "Illinois" in page


@pytest.mark.parametrize("role", ALL_ROLES)
def test_the_order_timeline_summary_never_shows_a_snapshot(client, order, role):
    page = order_page(client, user_with(role), order)

    assert "reason=address corrected" in page
    if role in ROLES_WITHOUT_CONTACT:
        assert STREET not in page


def event_page(client, user, order: Order) -> str:
    event = order.events.get(action="address_corrected")
    client.force_login(user)
    response = client.get(reverse("admin:orders_orderevent_change", args=[event.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_audit_event_page_shows_the_data_steward_the_snapshot(client, order):
    assert STREET in event_page(client, user_with("data_steward"), order)


@pytest.mark.parametrize("role", ["customer_service", "reviewer", "finance", "ops_admin"])
def test_the_audit_event_page_redacts_the_snapshot_for_other_roles(client, order, role):
    page = event_page(client, user_with(role), order)

    assert "address corrected" in page and "[redacted]" in page
    assert STREET not in page and PHONE not in page and "Ada Lovelace" not in page


def customer_page(client, user, customer: Customer) -> str:
    client.force_login(user)
    response = client.get(reverse("admin:orders_customer_change", args=[customer.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_customer_page_has_no_phone_for_finance(client, order, finance_user):
    page = customer_page(client, finance_user, order.customer)

    assert CUSTOMER_PHONE not in page and 'name="phone"' not in page
    assert order.customer.email in page  # finance writes to a customer about credit and invoices


def test_finance_cannot_set_a_customer_phone_through_the_form(client, order, finance_user):
    customer = order.customer
    client.force_login(finance_user)

    response = client.post(
        reverse("admin:orders_customer_change", args=[customer.pk]),
        {"email": customer.email, "name": customer.name, "phone": "+1 000 000 0000",
         "account_type": "consumer", "company_name": "", "net_terms_days": "0",
         "credit_limit": "0", "credit_currency": "USD"},
    )  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:2000]
    customer.refresh_from_db()
    assert customer.phone == CUSTOMER_PHONE


@pytest.mark.parametrize("role", ["customer_service", "reviewer", "data_steward"])
def test_the_customer_page_shows_the_phone_to_the_others(client, order, role):
    assert CUSTOMER_PHONE in customer_page(client, user_with(role), order.customer)
