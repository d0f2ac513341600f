"""Returns started by the customer on the order status page: the form on its own address, one
return per submitted form, the policy's verdict, the return's own page and its label, and the
same plain 404 for any token or return number that does not belong together."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from fulfillment.models import ActionKind, OutboundAction, Return, ReturnPolicy
from fulfillment.outbox.services import action_dispatch
from fulfillment.status_page import status_path, status_token
from tests.fulfillment.test_close_orders import delivered

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quiet(settings):
    settings.CRM_TARGETS = []
    settings.RETURN_WINDOW_DAYS_DEFAULT = 30


def _policy(**kw):
    defaults = {"name": "Standard returns", "window_days": 30,
                "auto_authorize_limit": Decimal("100")}  # fmt: skip
    return ReturnPolicy.objects.create(**{**defaults, **kw})


def form_path(order) -> str:
    return reverse("order-status-start-return", args=[status_token(order.pk)])


def _form(client, order) -> tuple[str, int]:
    """The form's request key and the one returnable line's id (read from the page)."""
    html = client.get(form_path(order)).content.decode()
    line = order.lines.get()
    assert f'name="qty_{line.pk}"' in html
    key = html.split('name="key" value="', 1)[1].split('"', 1)[0]
    return key, line.pk


def test_the_status_page_offers_the_return_form_on_its_own_page():
    _policy()
    order, _parcel = delivered()

    page = Client().get(status_path(order.pk))
    assert 'class="start-return"' in page.content.decode()
    assert not page.cookies  # the status page itself still sets nothing

    form = Client().get(form_path(order))
    html = form.content.decode()
    assert form.status_code == 200
    assert "Return items from order" in html and "Changed my mind" in html
    assert form["Cache-Control"] == "private, no-store"
    # A POST from a no-referrer page carries "Origin: null", which the CSRF check refuses.
    assert form["Referrer-Policy"] == "same-origin"
    assert b'<meta name="referrer" content="same-origin">' in form.content
    assert "csrftoken" in form.cookies  # the form, and only the form, needs its CSRF cookie


def test_a_submitted_return_is_authorized_by_policy_and_twice_submitted_is_one_return(client):
    _policy()
    order, _parcel = delivered()
    key, line_id = _form(client, order)
    data = {"key": key, f"qty_{line_id}": "1", f"reason_{line_id}": "size_or_fit",
            "resolution": "refund", "note": "Too small"}  # fmt: skip

    path = form_path(order)  # a double submit posts the one form's URL twice
    first = client.post(path, data)
    again = client.post(path, data)

    assert first.status_code == again.status_code == 303
    assert first["Location"] == again["Location"]
    ret = Return.objects.get(order=order)
    assert (ret.status, ret.requested_via) == ("authorized", "status_page")
    assert ret.auto_authorized
    assert ret.customer_note == "Too small"
    assert [(ln.quantity, ln.reason) for ln in ret.lines.all()] == [(1, "size_or_fit")]
    assert first["Location"].endswith(f"/return/{ret.rma_number}/")
    event = order.events.get(action="return_requested")
    assert (event.actor_kind, event.actor_id) == ("system", "customer:status-page")

    detail = client.get(first["Location"]).content.decode()
    assert ret.rma_number in detail and "Accepted" in detail
    assert "Download your return label" not in detail  # not bought yet
    # The label is bought by its outbox action; then the page and the status page offer it.
    action = OutboundAction.objects.get(kind=ActionKind.RETURN_LABEL)
    action_dispatch(action_id=action.pk)
    detail = client.get(first["Location"]).content.decode()
    assert "Download your return label" in detail
    label = client.get(f"{first['Location']}label.pdf")
    assert label.status_code == 200 and label["Content-Type"] == "application/pdf"
    assert label.content.startswith(b"%PDF") and label["Cache-Control"] == "private, no-store"
    status = client.get(status_path(order.pk)).content.decode()
    assert f">{ret.rma_number}</a>" in status
    # Nothing is left to return: the form says so instead of offering lines.
    html = client.get(form_path(order)).content.decode()
    assert "Nothing on this order can be returned here" in html


def test_over_the_policy_limit_the_return_waits_for_customer_service(client):
    _policy(auto_authorize_limit=Decimal("5"))
    order, _parcel = delivered()
    key, line_id = _form(client, order)

    response = client.post(form_path(order), {"key": key, f"qty_{line_id}": "1",
                                              f"reason_{line_id}": "changed_mind"})  # fmt: skip

    ret = Return.objects.get(order=order)
    assert ret.status == "requested"
    assert "we are reviewing it" in client.get(response["Location"]).content.decode()
    assert not OutboundAction.objects.filter(kind=ActionKind.RETURN_LABEL).exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({}, "Choose at least one item to return", id="nothing-chosen"),
        pytest.param({"qty": "1"}, "Tell us why you are returning", id="no-reason"),
        pytest.param({"qty": "2", "reason": "damaged"}, "at most 1", id="too-many"),
        pytest.param({"qty": "x", "reason": "damaged"}, "Choose how many", id="not-a-number"),
        pytest.param(
            {"qty": "1", "reason": "damaged", "resolution": "store_credit"},
            "refund or an exchange",
            id="unknown-resolution",
        ),
    ],
)
def test_a_form_that_cannot_start_a_return_says_what_to_correct_and_keeps_the_choices(
    client, fields, message
):
    _policy()
    order, _parcel = delivered()
    key, line_id = _form(client, order)
    data = {"key": key, "note": "kept"}
    if "qty" in fields:
        data[f"qty_{line_id}"] = fields["qty"]
    if "reason" in fields:
        data[f"reason_{line_id}"] = fields["reason"]
    if "resolution" in fields:
        data["resolution"] = fields["resolution"]

    response = client.post(form_path(order), data)

    assert response.status_code == 400
    html = response.content.decode()
    assert 'role="alert"' in html and message in html
    assert ">kept</textarea>" in html
    assert not Return.objects.exists()


def test_after_the_window_the_form_is_closed_and_a_post_is_refused(client):
    _policy(window_days=30)
    order, parcel = delivered()
    key, line_id = _form(client, order)
    type(parcel).objects.filter(pk=parcel.pk).update(
        delivered_at=parcel.delivered_at - timedelta(days=31)
    )

    html = client.get(form_path(order)).content.decode()
    assert "The return window for this order has closed" in html
    assert 'class="start-return"' not in client.get(status_path(order.pk)).content.decode()
    response = client.post(form_path(order), {"key": key, f"qty_{line_id}": "1",
                                              f"reason_{line_id}": "damaged"})  # fmt: skip
    assert response.status_code == 400
    assert not Return.objects.exists()


def test_the_form_refuses_a_post_without_its_csrf_token():
    _policy()
    order, _parcel = delivered()
    line = order.lines.get()
    browser = Client(enforce_csrf_checks=True)

    response = browser.post(form_path(order), {f"qty_{line.pk}": "1",
                                               f"reason_{line.pk}": "damaged"})  # fmt: skip

    assert response.status_code == 403
    assert not Return.objects.exists()


def test_a_token_opens_only_its_own_orders_returns(client):
    _policy()
    order, _parcel = delivered()
    other, _other_parcel = delivered()
    key, line_id = _form(client, order)
    where = client.post(form_path(order), {"key": key, f"qty_{line_id}": "1",
                                           f"reason_{line_id}": "damaged"})["Location"]  # fmt: skip
    rma = Return.objects.get(order=order).rma_number
    other_token = status_token(other.pk)

    for path in (
        reverse("order-status-return", args=[other_token, rma]),
        reverse("order-status-return-label", args=[other_token, rma]),
        reverse("order-status-return", args=[status_token(order.pk), "RMA-NOPE"]),
        reverse("order-status-start-return", args=["1.bad.token"]),
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.content == client.get(reverse("order-status", args=["x"])).content
    assert client.get(where).status_code == 200
