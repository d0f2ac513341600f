"""Refund and return emails: each renders (text + HTML), sends once, and carries no personal
data in its result; the return label email waits (retryable) until the label is bought."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core import mail

from fulfillment.models import ActionKind, ActionStatus, Return, ReturnPolicy
from fulfillment.returns import ReturnLineRequest, return_reject, return_request
from fulfillment.status_page import absolute_url, status_token_order_id
from orders.actors import Actor
from orders.refunds import LineRequest, refund_issue
from tests.fulfillment.outbox.helpers import dispatch, fresh, make_due, write
from tests.fulfillment.test_close_orders import delivered

pytestmark = pytest.mark.django_db
CS = Actor.system("cs")


@pytest.fixture(autouse=True)
def quiet(settings):
    settings.CRM_TARGETS = []
    settings.ERP_TARGET = ""
    settings.NOTIFY_TARGETS = []  # the emails under test are written by the tests
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.RETURN_WINDOW_DAYS_DEFAULT = 30


def _email(order, template: str, **ids):
    return write(order, ActionKind.NOTIFY_CUSTOMER, "email", {"template": template, **ids},
                 lane="notify", version=900 + len(mail.outbox))  # fmt: skip


def _status_link_order_id(body: str) -> int | None:
    """The order the email's status link opens. The token is signed with the second it was
    made, so the link is read back rather than compared with a fresh one."""
    prefix = re.escape(absolute_url("/status/"))
    match = re.search(rf"Your order status: {prefix}([^/\s]+)/", body)
    assert match, body
    return status_token_order_id(match.group(1))


def _no_personal_data(action, order) -> None:
    text = repr(action.result)
    assert order.customer.email not in text and order.customer.name not in text


def test_refund_issued_says_the_amount_per_method_the_lines_and_links_the_status_page():
    order, _parcel = delivered()
    line = order.lines.get()
    refund = refund_issue(order_id=order.pk, actor=CS, key="cs-1",
                          lines=[LineRequest(line.pk, 1)], shipping=True).refund  # fmt: skip
    mail.outbox.clear()
    action = _email(order, "refund_issued", refund_id=refund.pk)
    assert action.status == ActionStatus.SUCCEEDED, action.last_error
    [message] = mail.outbox
    assert message.to == [order.customer.email]
    assert refund.reference in message.body and "16.50 USD" in message.body
    [payment] = refund.payments.all()
    assert f"16.50 USD to {payment.method}" in message.body
    assert "1 x " in message.body
    assert _status_link_order_id(message.body) == order.pk
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and refund.reference in html
    _no_personal_data(action, order)
    dispatch(fresh(action))  # a second run of the message sends nothing more
    assert len(mail.outbox) == 1


def _return(**policy):
    limit = Decimal(policy.get("limit", "100"))
    ReturnPolicy.objects.create(name="Standard", window_days=30, auto_authorize_limit=limit)
    order, _parcel = delivered()
    line = order.lines.get()
    ret = return_request(order_id=order.pk, via="status_page", actor=CS,
                         lines=[ReturnLineRequest(line.pk, 1, "damaged")])  # fmt: skip
    return order, ret


def test_return_label_email_attaches_the_label_pdf_and_says_how_to_send_it_back():
    order, ret = _return()
    Return.objects.filter(pk=ret.pk).update(label_pdf=b"%PDF-1.4 label", label_carrier="local")
    mail.outbox.clear()
    action = _email(order, "return_label", return_id=ret.pk)
    assert action.status == ActionStatus.SUCCEEDED, action.last_error
    [message] = mail.outbox
    assert ret.rma_number in message.body and "How to send it back" in message.body
    assert message.attachments == [
        (f"return-label-{ret.rma_number}.pdf", b"%PDF-1.4 label", "application/pdf")
    ]
    _no_personal_data(action, order)


def test_return_label_email_waits_while_the_label_is_not_bought_then_sends():
    order, ret = _return()
    Return.objects.filter(pk=ret.pk).update(label_pdf=None, label_url="")
    mail.outbox.clear()
    action = _email(order, "return_label", return_id=ret.pk)
    assert action.status == ActionStatus.RETRY_SCHEDULED
    assert "no label yet" in action.last_error and mail.outbox == []
    Return.objects.filter(pk=ret.pk).update(label_url="https://labels.example/r/1.pdf")
    make_due(action)
    dispatch(action)
    action = fresh(action)
    assert action.status == ActionStatus.SUCCEEDED, action.last_error
    [message] = mail.outbox
    assert message.attachments == [] and "https://labels.example/r/1.pdf" in message.body


def test_return_rejected_email_gives_the_reason():
    order, ret = _return(limit="1")
    ret = return_reject(return_id=ret.pk, actor=CS, note="Opened and used: not returnable")
    mail.outbox.clear()
    action = _email(order, "return_rejected", return_id=ret.pk)
    assert action.status == ActionStatus.SUCCEEDED, action.last_error
    [message] = mail.outbox
    assert ret.rma_number in message.body and "Opened and used: not returnable" in message.body
    assert "Opened and used" in message.alternatives[0][0]
    _no_personal_data(action, order)
