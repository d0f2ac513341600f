"""A webhook while the database cannot be reached (found by the soak, bench/soak.py).

PostgreSQL restarting (or unreachable) makes every query fail, the channel lookup first. The
endpoint's contract is "503 when the inbox could not be written": the vendor retries a 503
later, and a stack trace is no answer to it. The database is made unreachable with Django's own
query hook (``connection.execute_wrapper``), which fails every query as a dropped connection does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import OperationalError, connection

from channels.models import ChannelKind, InboundEvent, SalesChannel
from orders.models import Product
from tests.channels.test_webhook import SECRET, SLUG, canonical_order, envelope, post
from tests.factories import SalesChannelFactory


@pytest.fixture
def storefront(db) -> SalesChannel:
    for sku in ("MUG-RED", "TEE-L"):
        Product.objects.create(sku=sku, title=sku)
    return SalesChannelFactory(kind=ChannelKind.CUSTOM, slug=SLUG, webhook_secret=SECRET)


@contextmanager
def database_unreachable() -> Iterator[None]:
    def refuse(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        raise OperationalError(
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            "FATAL:  the database system is starting up"
        )

    with connection.execute_wrapper(refuse):
        yield


def test_delivery_while_the_database_is_unreachable_is_answered_503_to_retry(storefront, client):
    body = envelope(canonical_order(), event_id="evt_db_down")

    with database_unreachable():
        response = post(client, body)

    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert not InboundEvent.objects.exists()


def test_the_same_delivery_is_accepted_once_the_database_is_back(storefront, client):
    body = envelope(canonical_order(), event_id="evt_db_back")
    with database_unreachable():
        assert post(client, body).status_code == 503

    response = post(client, body)

    assert response.status_code == 202
    assert InboundEvent.objects.get().dedup_key == "event:evt_db_back"


@pytest.mark.parametrize("where", ["channel lookup", "inbox insert"])
def test_no_database_error_escapes_the_webhook_as_a_500(storefront, client, where):
    """Whichever query fails first, the answer is the same 503 (never Django's 500 page)."""
    body = envelope(canonical_order(), event_id=f"evt_{where.replace(' ', '_')}")
    calls = {"n": 0}

    def refuse_from(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        calls["n"] += 1
        if where == "channel lookup" or "channels_inboundevent" in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_from):
        response = post(client, body)

    assert response.status_code == 503
    assert calls["n"] >= 1
