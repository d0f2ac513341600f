"""Personal data per role in fulfillment (issue 10, item 7).

A label prints the street address and phone: it is offered (API, admin, the order's page) only
to those with ``orders.view_contact_details``. The outbox's payloads and the vendors' answers
are raw payloads: shown to those with ``orders.view_raw_payload`` (ops) only.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from fulfillment.models import ActionKind, Shipment
from fulfillment.shipments import shipment_buy_label, shipments_create_for_order
from orders.actors import Actor
from tests.factories import make_order, make_user
from tests.fulfillment.helpers import add_warehouse, stock
from tests.fulfillment.outbox.helpers import write

pytestmark = pytest.mark.django_db

OPS = Actor.system("test")
HOSTED = "https://easypost-files.s3.us-west-2.amazonaws.com/files/postage_label/label.pdf"


@pytest.fixture
def shipment() -> Shipment:
    add_warehouse("A")
    stock("MUG", "A", 5)
    order = make_order(paid=True, lines=[("MUG", 1, "10.00")])
    assert order.status == "allocated", order.status_reason
    [draft] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    return shipment_buy_label(shipment_id=draft.pk, actor=OPS)


@pytest.mark.parametrize("role", ["finance", "ops_admin"])
def test_finance_and_ops_get_no_label_from_the_api(api_client, role, shipment):
    api_client.force_authenticate(make_user(f"u-{role}", role))

    body = api_client.get(f"/api/v1/shipments/{shipment.pk}/").json()
    pdf = api_client.get(f"/api/v1/shipments/{shipment.pk}/label/")
    zpl = api_client.get(f"/api/v1/shipments/{shipment.pk}/label/", {"label_format": "zpl"})

    assert body["tracking_number"] == shipment.tracking_number
    assert body["label_url"] is None
    assert (pdf.status_code, zpl.status_code) == (403, 403)
    assert pdf.json()["code"] == "permission_denied"


def test_finance_gets_no_carrier_hosted_label_either(api_client, finance_user, shipment):
    Shipment.objects.filter(pk=shipment.pk).update(
        label_pdf=None, label_zpl="", flags={**shipment.flags, "label_url": HOSTED}
    )
    api_client.force_authenticate(finance_user)

    assert api_client.get(f"/api/v1/shipments/{shipment.pk}/").json()["label_url"] is None
    assert api_client.get(f"/api/v1/shipments/{shipment.pk}/label/").status_code == 403


@pytest.mark.parametrize("role", ["customer_service", "reviewer", "data_steward"])
def test_the_roles_that_see_addresses_get_the_label(api_client, role, shipment):
    api_client.force_authenticate(make_user(f"u-{role}", role))

    body = api_client.get(f"/api/v1/shipments/{shipment.pk}/").json()

    assert body["label_url"].endswith(f"/api/v1/shipments/{shipment.pk}/label/")
    assert api_client.get(body["label_url"])["Content-Type"] == "application/pdf"


def test_the_admin_offers_finance_no_label(client, finance_user, shipment):
    Shipment.objects.filter(pk=shipment.pk).update(flags={**shipment.flags, "label_url": HOSTED})
    client.force_login(finance_user)

    page = client.get(reverse("admin:fulfillment_shipment_change", args=[shipment.pk]))
    listing = client.get(reverse("admin:fulfillment_shipment_changelist"))
    order_page = client.get(reverse("admin:orders_order_change", args=[shipment.order_id]))
    label = client.get(reverse("admin:fulfillment_shipment_label", args=[shipment.pk]))

    for response in (page, listing, order_page):
        html = response.content.decode()
        assert response.status_code == 200
        assert "4x6 PDF" not in html and HOSTED not in html
        assert shipment.tracking_number in html
    assert label.status_code == 403


def test_the_admin_offers_customer_service_the_label(client, cs_user, shipment):
    client.force_login(cs_user)

    page = client.get(reverse("admin:fulfillment_shipment_change", args=[shipment.pk]))
    order_page = client.get(reverse("admin:orders_order_change", args=[shipment.order_id]))
    label = client.get(reverse("admin:fulfillment_shipment_label", args=[shipment.pk]))

    assert "4x6 PDF" in page.content.decode() and "4x6 PDF" in order_page.content.decode()
    assert label["Content-Type"] == "application/pdf"


# --- the outbox ---------------------------------------------------------------------------------
@pytest.fixture
def action():
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)
    return write(order, ActionKind.NOTIFY_CUSTOMER, "email", {"template": "order_confirmation"})


@pytest.mark.parametrize("role", ["customer_service", "reviewer", "finance", "ops_admin"])
def test_the_outbox_api_shows_no_payload_or_answer_without_the_raw_permission(
    api_client, action, role
):
    api_client.force_authenticate(make_user(f"u-{role}", role))

    body = api_client.get(f"/api/v1/outbound-actions/{action.pk}/").json()

    assert body["status"] == "succeeded" and body["kind"] == "notify_customer"
    assert (body["payload"], body["result"]) == (None, None)


def test_the_outbox_api_shows_the_data_steward_the_payload_and_answer(
    api_client, action, steward_user
):
    api_client.force_authenticate(steward_user)

    body = api_client.get(f"/api/v1/outbound-actions/{action.pk}/").json()

    assert body["payload"]["template"] == "order_confirmation"
    assert body["result"]["template"] == "order_confirmation"


@pytest.mark.parametrize(
    ("role", "shown"),
    [("customer_service", False), ("finance", False), ("ops_admin", False), ("data_steward", True)],
)
def test_the_outbox_admin_shows_the_payload_to_the_data_steward_only(client, action, role, shown):
    client.force_login(make_user(f"u-{role}", role))

    page = client.get(reverse("admin:fulfillment_outboundaction_change", args=[action.pk]))

    html = page.content.decode()
    assert page.status_code == 200 and action.idempotency_key in html
    assert ("order_confirmation" in html) is shown
