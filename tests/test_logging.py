"""Structured logs: one JSON object per line, carrying the request's correlation id, no emails.

The lines are rendered by the project's own "structured" formatter from ``settings.LOGGING``
(the one the console handler uses), attached to the root logger for the test.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from django.conf import settings
from django.test import Client
from django.urls import reverse

from config import correlation
from orders.models import OrderEvent
from tests.factories import make_order

EMAIL = "jane.doe@example.com"
FRESH_ID = re.compile(r"c-[0-9a-f]{32}")

LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """Every record logged during the test, as rendered by the "structured" formatter, parsed."""
    config = dict(settings.LOGGING["formatters"]["structured"])
    formatter_class = config.pop("()")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter_class(**config))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines() -> list[dict[str, Any]]:
        # json.loads fails the test on any line that is not one JSON object.
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _hold_through_admin(user: Any, order_id: int, header: str | None) -> Any:
    client = Client()
    client.force_login(user)
    headers = {correlation.HEADER: header} if header is not None else {}
    return client.post(
        reverse("admin:orders_order_transition", args=[order_id]),
        {"transition": "hold", "expected_state": "validated", "reason": "buyer asked"},
        headers=headers,
    )


def _hold_lines(lines: list[dict[str, Any]], order_id: int) -> list[dict[str, Any]]:
    return [
        line
        for line in lines
        if line.get("event") == "order.transition"
        and line.get("order_id") == order_id
        and line.get("transition") == "hold"
    ]


def test_request_echoes_its_correlation_id_and_the_service_log_line_carries_it(cs_user, log_lines):
    order = make_order()

    response = _hold_through_admin(cs_user, order.pk, "abc-123")

    assert response.status_code == 302
    assert response[correlation.HEADER] == "abc-123"
    [line] = _hold_lines(log_lines(), order.pk)
    assert line["correlation_id"] == "abc-123"
    assert line["transition"] == "hold"
    assert (line["from_state"], line["to_state"]) == ("validated", "on_hold")
    assert line["level"] == "info"
    assert line["logger"] == "orders.services"
    assert line["path"] == f"/admin/orders/order/{order.pk}/transition/"
    # The audit event of the same action carries the same id.
    event = OrderEvent.objects.get(order=order, action="hold")
    assert event.correlation_id == "abc-123"


def test_request_without_correlation_header_gets_a_fresh_id_in_response_and_logs(
    cs_user, log_lines
):
    order = make_order()

    response = _hold_through_admin(cs_user, order.pk, None)

    cid = response[correlation.HEADER]
    assert FRESH_ID.fullmatch(cid)
    [line] = _hold_lines(log_lines(), order.pk)
    assert line["correlation_id"] == cid


@pytest.mark.parametrize(
    "unsafe",
    [
        "a" * 200,
        "a" * 65,
        "abc 123",
        "abc\n123",
        "abc\r\nSet-Cookie: x=1",
        'abc"}, "level": "critical',
        "abc/../123",
    ],
    ids=["200-chars", "65-chars", "space", "newline", "header-injection", "json-quote", "slash"],
)
def test_unsafe_correlation_header_is_replaced_by_a_fresh_id(cs_user, log_lines, unsafe):
    order = make_order()

    response = _hold_through_admin(cs_user, order.pk, unsafe)

    cid = response[correlation.HEADER]
    assert cid.startswith("c-")
    assert FRESH_ID.fullmatch(cid)
    [line] = _hold_lines(log_lines(), order.pk)
    assert line["correlation_id"] == cid
    assert OrderEvent.objects.get(order=order, action="hold").correlation_id == cid


def test_plain_correlation_header_of_64_chars_is_kept():
    plain = "req-" + "0123456789abcdef" * 3 + "ABCDEFGH_.:-"
    assert len(plain) == 64

    response = Client().get("/healthz", headers={correlation.HEADER: plain})

    assert response.status_code == 200
    assert response[correlation.HEADER] == plain


def test_two_requests_without_header_get_different_ids():
    first = Client().get("/healthz")[correlation.HEADER]
    second = Client().get("/healthz")[correlation.HEADER]

    assert FRESH_ID.fullmatch(first) and FRESH_ID.fullmatch(second)
    assert first != second


def test_email_passed_as_a_log_field_is_redacted(log_lines):
    log = structlog.get_logger("orders.services")

    with correlation.bound("abc-123"):
        log.info("order.transition", order_id=7, contact=EMAIL, note=f"buyer {EMAIL} called")
        logging.getLogger("orders.services").info(
            "mail to %s failed", EMAIL, extra={"buyer_email": EMAIL, "order_id": 7}
        )

    structured, foreign = log_lines()
    assert structured["event"] == "order.transition"
    assert structured["correlation_id"] == "abc-123"
    assert structured["order_id"] == 7
    assert structured["contact"] == "[email]"
    assert structured["note"] == "buyer [email] called"
    # A plain logging call goes through the same chain (foreign_pre_chain).
    assert foreign["event"] == "mail to [email] failed"
    assert foreign["buyer_email"] == "[email]"
    assert foreign["correlation_id"] == "abc-123"
    assert foreign["order_id"] == 7
    assert "@" not in json.dumps([structured, foreign])


def test_email_in_a_logged_exception_is_redacted(log_lines):
    log = structlog.get_logger("orders.services")

    with correlation.bound("abc-123"):
        try:
            raise ValueError(f"no mailbox {EMAIL}")
        except ValueError:
            log.exception("notify.failed", order_id=7)

    [line] = log_lines()
    assert line["event"] == "notify.failed"
    assert "ValueError: no mailbox [email]" in line["exception"]
    assert EMAIL not in json.dumps(line)


def test_email_nested_in_a_log_field_is_redacted(log_lines):
    log = structlog.get_logger("orders.services")

    with correlation.bound("abc-123"):
        log.info("order.synced", order_id=7, changes={"customer": {"email": EMAIL}}, to=[EMAIL])

    [line] = log_lines()
    assert line["order_id"] == 7
    assert EMAIL not in json.dumps(line)


def test_correlation_id_of_a_request_does_not_leak_into_later_log_lines(log_lines):
    def request_then_log() -> str:
        response = Client().get("/healthz", headers={correlation.HEADER: "abc-123"})
        structlog.get_logger("orders.services").info("after.request", order_id=2)
        return response[correlation.HEADER]

    # A fresh context: what earlier tests left bound in this thread does not count.
    echoed = contextvars.Context().run(request_then_log)

    assert echoed == "abc-123"
    [line] = [line for line in log_lines() if line["event"] == "after.request"]
    assert "correlation_id" not in line
