"""A carrier's label URL becomes a link (admin, API) or a redirect (label download) only when it
is https on that carrier's own label hosts; anything else is shown as text and never followed."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from fulfillment.carriers import trusted_label_url
from fulfillment.models import Shipment
from fulfillment.shipments import shipment_buy_label, shipments_create_for_order
from orders.actors import Actor
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, stock

pytestmark = pytest.mark.django_db

OPS = Actor.system("test")


def sample_label_url() -> str:
    """The label_url EasyPost really answers with (its published buy response)."""
    path = settings.DEMO_SAMPLES_DIR / "easypost" / "shipment_buy_response.json"
    return json.loads(path.read_text())["postage_label"]["label_url"]


UNTRUSTED = [
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)//https://easypost.com/",
    "data:text/html,<script>alert(1)</script>",
    "http://easypost-files.s3.us-west-2.amazonaws.com/files/postage_label/label.pdf",
    "https://evil.example/label.pdf",
    "https://easypost-files.s3.us-west-2.amazonaws.com.evil.example/label.pdf",
    "https://evil.example/?next=https://easypost.com/label.pdf",
    "https://easypost.com@evil.example/label.pdf",
    "https://noteasypost.com/label.pdf",
    "https://easypost.com:8443/label.pdf",
    "//easypost.com/label.pdf",
    " https://easypost.com/label.pdf",
    "https://s3.amazonaws.com/another-bucket/label.pdf",
]


def hosted_shipment(url: str, *, carrier: str = "easypost") -> Shipment:
    """A shipment whose label the carrier hosts at ``url`` (no PDF of ours)."""
    add_warehouse("A")
    stock("MUG", "A", 5)
    order = make_order(paid=True, lines=[("MUG", 1, "10.00")])
    [shipment] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    shipment = shipment_buy_label(shipment_id=shipment.pk, actor=OPS)
    Shipment.objects.filter(pk=shipment.pk).update(
        carrier=carrier, label_pdf=None, label_zpl="", flags={**shipment.flags, "label_url": url}
    )
    shipment.refresh_from_db()
    return shipment


def test_easypost_declares_the_host_of_its_published_label_url():
    url = sample_label_url()

    assert trusted_label_url("easypost", url) == url
    assert trusted_label_url("easypost", "https://files.easypost.com/label.pdf")


@pytest.mark.parametrize("url", UNTRUSTED)
def test_an_untrusted_label_url_is_not_trusted_for_easypost(url):
    assert trusted_label_url("easypost", url) is None


def test_a_label_url_is_trusted_only_for_the_carrier_that_hosts_it():
    url = sample_label_url()

    assert trusted_label_url("local", url) is None  # the local carrier never links out
    assert trusted_label_url("no-such-carrier", url) is None
    assert trusted_label_url("easypost", "") is None


def test_a_trusted_label_url_is_linked_in_the_admin_listed_in_the_api_and_redirected_to(
    api_client, client, cs_user
):
    url = sample_label_url()
    shipment = hosted_shipment(url)
    api_client.force_authenticate(cs_user)

    assert api_client.get(f"/api/v1/shipments/{shipment.pk}/").json()["label_url"] == url
    response = api_client.get(f"/api/v1/shipments/{shipment.pk}/label/")
    assert (response.status_code, response["Location"]) == (302, url)

    client.force_login(cs_user)  # a label prints the street: the roles that see it
    page = client.get(f"/admin/fulfillment/shipment/{shipment.pk}/change/").content.decode()
    assert f'<a href="{url}"' in page


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "http://easypost-files.s3.us-west-2.amazonaws.com/l.pdf",
     "https://evil.example/label.pdf"],
)  # fmt: skip
def test_an_untrusted_label_url_is_text_in_the_admin_and_never_a_link(client, cs_user, url):
    shipment = hosted_shipment(url)
    client.force_login(cs_user)

    page = client.get(f"/admin/fulfillment/shipment/{shipment.pk}/change/").content.decode()

    assert f'href="{url}"' not in page
    assert 'href="javascript:' not in page
    assert "carrier label" not in page  # the link text of a trusted label
    assert "not a link" in page  # the person sees why


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "http://easypost-files.s3.us-west-2.amazonaws.com/l.pdf",
     "https://evil.example/label.pdf"],
)  # fmt: skip
def test_an_untrusted_label_url_is_not_listed_nor_redirected_to_by_the_api(
    api_client, cs_user, url
):
    shipment = hosted_shipment(url)
    api_client.force_authenticate(cs_user)

    assert api_client.get(f"/api/v1/shipments/{shipment.pk}/").json()["label_url"] is None
    response = api_client.get(f"/api/v1/shipments/{shipment.pk}/label/")

    assert response.status_code == 409
    assert "Location" not in response
    body = response.json()
    assert body["code"] == "label_url_untrusted"
    assert "easypost" in body["detail"]


def test_an_easypost_url_on_a_local_carrier_shipment_is_not_followed(api_client, cs_user):
    shipment = hosted_shipment(sample_label_url(), carrier="local")
    api_client.force_authenticate(cs_user)

    response = api_client.get(f"/api/v1/shipments/{shipment.pk}/label/")

    assert response.status_code == 409
    assert response.json()["code"] == "label_url_untrusted"
