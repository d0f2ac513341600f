"""Returns and refunds in the admin, through the test client: every button calls the
``fulfillment.returns`` / ``orders.refunds`` services, refusals come back as messages, and the
roles decide who may act (a reviewer may look, not act)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fulfillment.models import Return, StockLevel
from orders.models import OrderEvent, Refund, RefundLimit
from tests.factories import make_user
from tests.fulfillment.returns_world import cs_limit, delivered_order, review_policy

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quiet(settings):
    settings.CRM_TARGETS = []
    settings.RETURN_WINDOW_DAYS_DEFAULT = 30


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def start(client, order, quantities: dict[int, tuple[int, str]], key: str = "k-1"):
    data = {"key": key, "resolution": "refund"}
    for line_id, (quantity, reason) in quantities.items():
        data[f"quantity-{line_id}"] = str(quantity)
        data[f"reason-{line_id}"] = reason
    return client.post(f"/admin/fulfillment/return/start/{order.pk}/", data, follow=True)


def act(client, ret, action, **data):
    return client.post(f"/admin/fulfillment/return/{ret.pk}/act/", {"action": action, **data},
                       follow=True)  # fmt: skip


def test_customer_service_starts_authorizes_and_receives_a_return_in_the_admin(client):
    review_policy()
    cs_limit("100")
    order = delivered_order([("MUG", 1, "10.00"), ("CUP", 2, "15.00")])
    mug, cup = order.lines.order_by("line_no")
    client.force_login(make_user("carol", "customer_service"))

    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert f"/admin/fulfillment/return/start/{order.pk}/" in page and "No returns." in page

    started = start(client, order, {mug.pk: (1, "changed_mind"), cup.pk: (2, "damaged")})
    ret = Return.objects.get(order=order)
    assert ret.requested_via == "admin" and ret.status == "requested"
    assert messages_of(started) == [f"{ret.rma_number} started (status Requested (waiting for "
                                    "customer service))."]  # fmt: skip
    body = started.content.decode()
    assert "Needs customer service: the policy authorizes no return by itself." in body
    assert ">Authorize</button>" in body and ">Receive</button>" not in body

    authorized = act(client, ret, "authorize")
    assert messages_of(authorized) == [f"{ret.rma_number}: authorize done (status Authorized)."]
    assert ">Receive</button>" in authorized.content.decode()

    before = {sku: StockLevel.objects.get(sku=sku).on_hand for sku in ("MUG", "CUP")}
    lines = {ln.sku: ln for ln in ret.lines.all()}
    conditions = {f"condition-{lines['MUG'].pk}": "restock",
                  f"condition-{lines['CUP'].pk}": "damaged"}  # fmt: skip
    received = act(client, ret, "receive", **conditions)
    assert messages_of(received) == [f"{ret.rma_number}: receive done (status Refunded)."]
    ret.refresh_from_db()
    assert ret.status == "refunded"
    assert StockLevel.objects.get(sku="MUG").on_hand == before["MUG"] + 1
    assert StockLevel.objects.get(sku="CUP").on_hand == before["CUP"]  # damaged: not back
    refund = ret.refund
    # 40.00 goods + 1.50 tax + 5.00 shipping (one line damaged: our fault, shipping back).
    assert refund.amount == order.total == Decimal("46.50")

    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert refund.reference in page and "original payment 46.50" in page
    assert ret.rma_number in page and "Refunded" in page
    assert OrderEvent.objects.filter(order=order, action="return_receive").exists()


def test_reject_without_a_note_is_refused_in_words_and_changes_nothing(client):
    review_policy()
    order = delivered_order([("MUG", 1, "10.00")])
    client.force_login(make_user("carol", "customer_service"))
    start(client, order, {order.lines.get().pk: (1, "changed_mind")})
    ret = Return.objects.get()

    refused = act(client, ret, "reject", note="  ")
    assert messages_of(refused) == ["Refused: Say why the return is rejected (the customer is "
                                    "told)"]  # fmt: skip
    ret.refresh_from_db()
    assert ret.status == "requested"
    done = act(client, ret, "reject", note="Worn, not returnable")
    ret.refresh_from_db()
    assert ret.status == "rejected" and ret.decision_note == "Worn, not returnable"
    assert ">Authorize</button>" not in done.content.decode()


def test_a_refund_above_the_customer_service_limit_is_refused_with_the_limit(client):
    review_policy()
    cs_limit("100")
    order = delivered_order([("LAMP", 1, "150.00")])
    client.force_login(make_user("carol", "customer_service"))
    start(client, order, {order.lines.get().pk: (1, "changed_mind")})
    ret = Return.objects.get()
    act(client, ret, "authorize")

    refused = act(client, ret, "refund")
    assert messages_of(refused) == [
        "Refused: A refund of 151.50 USD is above your limit of 100.00 USD: finance must issue it"
    ]
    assert not Refund.objects.filter(order=order).exists()
    ret.refresh_from_db()
    assert ret.status == "authorized"


def test_a_reviewer_sees_a_return_but_cannot_start_or_move_it(client):
    review_policy()
    order = delivered_order([("MUG", 1, "10.00")])
    client.force_login(make_user("carol", "customer_service"))
    start(client, order, {order.lines.get().pk: (1, "changed_mind")})
    ret = Return.objects.get()

    client.force_login(make_user("rita", "reviewer"))
    page = client.get(f"/admin/fulfillment/return/{ret.pk}/change/")
    assert page.status_code == 200
    assert "No action is open to you in this state." in page.content.decode()
    order_page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert ret.rma_number in order_page and "Start a return" not in order_page
    for action in ("authorize", "reject", "receive", "refund", "exchange"):
        assert client.post(f"/admin/fulfillment/return/{ret.pk}/act/",
                           {"action": action, "note": "x"}).status_code == 403  # fmt: skip
    assert client.get(f"/admin/fulfillment/return/start/{order.pk}/").status_code == 403
    assert client.post(f"/admin/fulfillment/return/start/{order.pk}/", {}).status_code == 403
    ret.refresh_from_db()
    assert ret.status == "requested"
    assert Return.objects.count() == 1


def _manual_refund(client) -> Refund:
    review_policy()
    cs_limit("100")
    order = delivered_order([("MUG", 1, "10.00")])
    client.force_login(make_user("carol", "customer_service"))
    start(client, order, {order.lines.get().pk: (1, "damaged")})
    ret = Return.objects.get()
    act(client, ret, "authorize")
    [line] = ret.lines.all()
    act(client, ret, "receive", **{f"condition-{line.pk}": "restock"})
    refund = Refund.objects.get(order=order)
    assert refund.status == "manual"  # the test channel cannot be asked to refund
    return refund


def test_finance_confirms_a_manual_refund_and_the_return_closes(client):
    refund = _manual_refund(client)
    client.force_login(make_user("fred", "finance"))
    page = client.get(f"/admin/orders/refund/{refund.pk}/change/").content.decode()
    assert "Confirm refunded by hand" in page
    done = client.post(f"/admin/orders/refund/{refund.pk}/confirm_manual/", follow=True)
    assert messages_of(done) == [f"Refund {refund.reference}: confirmed as refunded by hand."]
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert Return.objects.get().status == "closed"
    assert "Confirm refunded by hand" not in done.content.decode()
    event = OrderEvent.objects.get(order=refund.order, action="refund_confirm_manual")
    assert (event.actor_kind, event.actor_id) == ("user", "fred")


def test_a_reviewer_may_not_confirm_a_refund(client):
    refund = _manual_refund(client)
    client.force_login(make_user("rita", "reviewer"))
    page = client.get(f"/admin/orders/refund/{refund.pk}/change/")
    assert page.status_code == 200 and "Confirm refunded by hand" not in page.content.decode()
    assert client.post(f"/admin/orders/refund/{refund.pk}/confirm_manual/").status_code == 403
    refund.refresh_from_db()
    assert refund.status == "manual"


def test_refund_list_filters_by_the_channels_figures(client):
    refund = _manual_refund(client)
    other = _other_mismatched(refund)
    client.force_login(make_user("fred", "finance"))
    differ = client.get("/admin/orders/refund/?mismatch=yes").content.decode()
    agree = client.get("/admin/orders/refund/?mismatch=no").content.decode()
    assert other.reference in differ and refund.reference not in differ
    assert refund.reference in agree and other.reference not in agree
    assert client.get("/admin/orders/refund/add/").status_code == 403


def _other_mismatched(refund: Refund) -> Refund:
    """A copy of ``refund`` as if a channel's figures had differed (the row only: the list's
    filter reads ``computed``)."""
    return Refund.objects.create(
        order=refund.order, source="channel", external_id="ch-1", reference="RF-MISMATCH",
        currency=refund.currency, amount=Decimal("0"), correlation_id=refund.correlation_id,
        computed={"lines": [], "differences": [{"what": "total", "channel": "1", "ours": "0"}]},
    )  # fmt: skip


def test_a_mismatched_refund_shows_the_channels_figures_beside_ours_raw_only_to_stewards(client):
    refund = _manual_refund(client)
    other = _other_mismatched(refund)
    Refund.objects.filter(pk=other.pk).update(
        channel_figures={"order_adjustments": [{"amount": "-1.00"}],
                         "customer": {"phone": "+1 555 0100"}})  # fmt: skip
    client.force_login(make_user("fred", "finance"))
    page = client.get(f"/admin/orders/refund/{other.pk}/change/").content.decode()
    assert "The channel's figures differ from ours:" in page
    assert "<li>refund total: channel 1, ours 0</li>" in page
    assert "order_adjustments" in page and "+1 555 0100" not in page and "[redacted]" in page
    client.force_login(make_user("olga", "ops_admin"))
    page = client.get(f"/admin/orders/refund/{other.pk}/change/").content.decode()
    assert "order_adjustments" in page and "+1 555 0100" not in page
    client.force_login(make_user("stella", "data_steward"))
    page = client.get(f"/admin/orders/refund/{other.pk}/change/").content.decode()
    assert "+1 555 0100" in page


def test_refund_limits_are_finance_and_operations_only(client):
    client.force_login(make_user("carol", "customer_service"))
    assert client.get("/admin/orders/refundlimit/").status_code == 403
    limit = RefundLimit.objects.get(group__name="customer_service", currency="USD")
    client.force_login(make_user("fred", "finance"))
    assert client.get("/admin/orders/refundlimit/").status_code == 200
    form = {"group": limit.group_id, "currency": "USD", "max_amount": "250"}
    changed = client.post(f"/admin/orders/refundlimit/{limit.pk}/change/", form)
    assert changed.status_code == 302
    limit.refresh_from_db()
    assert limit.max_amount == Decimal("250")
    client.force_login(make_user("olga", "ops_admin"))
    assert client.get("/admin/orders/refundlimit/").status_code == 200


def test_an_exchange_started_in_the_admin_closes_with_its_replacement_order_on_receipt(client):
    review_policy()
    order = delivered_order([("MUG", 1, "10.00")])
    client.force_login(make_user("carol", "customer_service"))
    line = order.lines.get()
    client.post(f"/admin/fulfillment/return/start/{order.pk}/",
                {"key": "x-1", "resolution": "exchange", f"quantity-{line.pk}": "1",
                 f"reason-{line.pk}": "size_or_fit"})  # fmt: skip
    ret = Return.objects.get()
    assert ret.resolution == "exchange"
    page = act(client, ret, "authorize").content.decode()
    assert ">Refund</button>" not in page  # an exchange is not refunded
    [rl] = ret.lines.all()
    done = act(client, ret, "receive", **{f"condition-{rl.pk}": "restock"})
    ret.refresh_from_db()
    assert ret.status == "closed" and ret.exchange_order_id is not None
    assert not Refund.objects.filter(order=order).exists()
    assert f"/admin/orders/order/{ret.exchange_order_id}/change/" in done.content.decode()


def test_starting_a_return_with_nothing_chosen_is_refused_in_words(client):
    review_policy()
    order = delivered_order([("MUG", 1, "10.00")])
    client.force_login(make_user("carol", "customer_service"))
    refused = start(client, order, {order.lines.get().pk: (0, "damaged")})
    assert messages_of(refused) == ["Refused: Choose at least one item to return"]
    assert not Return.objects.exists()
    too_many = start(client, order, {order.lines.get().pk: (2, "damaged")})
    assert messages_of(too_many) == ["Refused: Only 1 unit(s) of MUG can be returned"]
    assert not Return.objects.exists()


def test_the_return_list_searches_by_rma_and_order_number_and_the_label_needs_contact_details(
    client,
):
    review_policy()
    first = delivered_order([("MUG", 1, "10.00")])
    second = delivered_order([("CUP", 1, "10.00")])
    client.force_login(make_user("carol", "customer_service"))
    start(client, first, {first.lines.get().pk: (1, "damaged")}, key="a")
    start(client, second, {second.lines.get().pk: (1, "damaged")}, key="b")
    one, two = Return.objects.get(order=first), Return.objects.get(order=second)

    found = client.get("/admin/fulfillment/return/", {"q": one.rma_number}).content.decode()
    assert one.rma_number in found and two.rma_number not in found
    found = client.get("/admin/fulfillment/return/", {"q": second.external_id}).content.decode()
    assert two.rma_number in found and one.rma_number not in found
    listed = client.get("/admin/fulfillment/return/", {"status__exact": "requested"})
    assert listed.status_code == 200 and one.rma_number in listed.content.decode()

    # A label (as the carrier's adapter stores it) prints the address: not for finance.
    Return.objects.filter(pk=one.pk).update(label_pdf=b"%PDF-1.4 return label")
    page = client.get(f"/admin/fulfillment/return/{one.pk}/change/").content.decode()
    assert f"/admin/fulfillment/return/{one.pk}/label/" in page
    label = client.get(f"/admin/fulfillment/return/{one.pk}/label/")
    assert label.status_code == 200 and label.content == b"%PDF-1.4 return label"
    assert label["Content-Type"] == "application/pdf"
    assert client.get(f"/admin/fulfillment/return/{two.pk}/label/").status_code == 403  # none
    client.force_login(make_user("fred", "finance"))
    assert client.get(f"/admin/fulfillment/return/{one.pk}/label/").status_code == 403
    page = client.get(f"/admin/fulfillment/return/{one.pk}/change/").content.decode()
    assert f"/admin/fulfillment/return/{one.pk}/label/" not in page
    assert "not shown to your role" in page
