"""The webhook behind real servers (issue 10, item 9): gunicorn and runserver on loopback, fed
raw HTTP. A garbled Content-Length is a 400 with our JSON body, never a 500; a chunked delivery
without Content-Length is read whole (gunicorn) up to the size limit, so a genuinely signed one
is accepted."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from channels.models import ChannelKind, InboundEvent
from tests.channels.adapters.test_shopify import _sign
from tests.factories import SalesChannelFactory
from tests.servers import start_server, stop_server
from tests.workers import purge_queues

pytestmark = [pytest.mark.django_db(transaction=True)]

SAMPLE = Path(settings.BASE_DIR).parent / "shared" / "samples" / "shopify"
SLUG, SECRET = "live-shop", "live-shop-secret"
URL = f"/webhooks/{SLUG}/"
LIMIT = 64 * 1024


def shopify_body() -> bytes:
    return json.dumps(
        json.loads((SAMPLE / "order_450789469_get.json").read_bytes())["order"]
    ).encode()


def shopify_headers(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json", "X-Shopify-Hmac-Sha256": _sign(body, SECRET),
        "X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": "live.myshopify.com",
        "X-Shopify-API-Version": "2026-07", "X-Shopify-Webhook-Id": "live-1",
    }  # fmt: skip


@pytest.fixture
def shop(transactional_db):
    return SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug=SLUG, webhook_secret=SECRET)


def server(kind: str, folder: Path) -> Iterator[int]:
    proc, port = start_server(
        kind, folder / f"{kind}.log", env={"WEBHOOK_MAX_BODY_BYTES": str(LIMIT)}
    )
    try:
        yield port
    finally:
        stop_server(proc)
        purge_queues()


# One server of each kind for the module (each reads the test database per request).
@pytest.fixture(scope="module")
def gunicorn_port(django_db_setup, tmp_path_factory) -> Iterator[int]:
    yield from server("gunicorn", tmp_path_factory.mktemp("gunicorn"))


@pytest.fixture(scope="module")
def runserver_port(django_db_setup, tmp_path_factory) -> Iterator[int]:
    yield from server("runserver", tmp_path_factory.mktemp("runserver"))


@pytest.fixture
def gunicorn(shop, gunicorn_port) -> int:
    return gunicorn_port


@pytest.fixture
def runserver(shop, runserver_port) -> int:
    return runserver_port


def raw_post(port: int, head: list[str], body: bytes) -> tuple[int, bytes]:
    """Send exactly these header lines and body bytes; the answer's status and body."""
    request = "\r\n".join([f"POST {URL} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
                          *head, "", ""]).encode() + body  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


@pytest.mark.parametrize("length", ["abc", "-1", "10, 10"])
def test_runserver_answers_a_garbled_content_length_400_with_a_json_reason(runserver, length):
    body = shopify_body()
    head = [f"{k}: {v}" for k, v in shopify_headers(body).items()]

    status, answer = raw_post(runserver, [*head, f"Content-Length: {length}"], body)

    assert status == 400, answer
    assert json.loads(answer)["code"] == "bad_content_length"
    assert not InboundEvent.objects.exists()


@pytest.mark.parametrize("length", ["abc", "-1", "10, 10"])
def test_gunicorn_never_answers_a_garbled_content_length_with_a_server_error(gunicorn, length):
    body = shopify_body()
    head = [f"{k}: {v}" for k, v in shopify_headers(body).items()]

    status, answer = raw_post(gunicorn, [*head, f"Content-Length: {length}"], body)

    assert status == 400, answer  # gunicorn's own refusal, before the request reaches Django
    assert not InboundEvent.objects.exists()


def post_chunked(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST with ``Transfer-Encoding: chunked`` and no Content-Length, in 1 KiB chunks."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        chunks = (body[i : i + 1024] for i in range(0, len(body), 1024))
        conn.request("POST", URL, body=chunks, headers=headers, encode_chunked=True)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_gunicorn_accepts_a_signed_chunked_shopify_delivery_without_content_length(gunicorn):
    body = shopify_body()
    assert len(body) > 4096  # several chunks

    status, answer = post_chunked(gunicorn, body, shopify_headers(body))

    assert status == 202, answer
    assert json.loads(answer)["accepted"] is True
    event = InboundEvent.objects.get()
    assert bytes(event.raw_body) == body
    assert event.topic == "orders/create"


def test_gunicorn_refuses_a_chunked_delivery_over_the_limit_413(gunicorn):
    body = b"[" + b"0," * LIMIT + b"0]"

    status, answer = post_chunked(gunicorn, body, shopify_headers(body))

    assert status == 413, answer
    assert json.loads(answer)["code"] == "payload_too_large"
    assert not InboundEvent.objects.exists()


def test_gunicorn_answers_503_with_a_json_body_when_the_database_is_down(shop, tmp_path):
    """The channel cannot even be looked up: the sender is told to retry, never a 500."""
    proc, port = start_server(
        "gunicorn", tmp_path / "down.log",
        env={"DATABASE_URL": f"sqlite:///{tmp_path}/no-such-folder/db.sqlite3"},
    )  # fmt: skip
    try:
        body = shopify_body()
        head = [f"{k}: {v}" for k, v in shopify_headers(body).items()]
        status, answer = raw_post(port, [*head, f"Content-Length: {len(body)}"], body)
    finally:
        stop_server(proc)

    assert status == 503, answer
    assert json.loads(answer)["code"] == "unavailable"
