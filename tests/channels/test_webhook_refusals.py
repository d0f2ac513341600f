"""Every refusal of ``POST /webhooks/<slug>/`` says why (issue 10, item 9): a JSON body
``{"code", "detail"}`` with a specific code, and a security log line with the reason, never a
header value, a secret or the body. Also: a garbled Content-Length is a 400, and a chunked body
is read up to the size limit and no further (see test_webhook_live.py for the real servers)."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest

from channels.models import ChannelKind, InboundEvent
from channels.signatures import sign_custom
from tests.factories import SalesChannelFactory
from tests.test_logging import log_lines  # noqa: F401 (a fixture)

SLUG = "refusing-store"
SECRET = "refusing-store-secret"
URL = f"/webhooks/{SLUG}/"
BODY = json.dumps({"id": "evt_9", "topic": "order.created", "order": {"x": 1}}).encode()


@pytest.fixture
def store(db):
    return SalesChannelFactory(kind=ChannelKind.CUSTOM, slug=SLUG, webhook_secret=SECRET)


def signed(body: bytes = BODY, *, secret: str = SECRET, age: int = 0) -> str:
    return sign_custom(secret=secret, body=body, timestamp=int(time.time()) - age)


def post(client, body: bytes = BODY, *, sig: str | None = None, url: str = URL, **extra: Any):
    if sig is not None:
        extra["HTTP_X_SIGNATURE"] = sig
    return client.post(url, data=body, content_type="application/json", **extra)


def refusal(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert data["code"] == code
    assert isinstance(data["detail"], str) and data["detail"]
    return data


def security_lines(lines) -> list[dict[str, Any]]:
    return [line for line in lines() if line.get("logger") == "security"]


# --- Content-Length ---------------------------------------------------------------------------
@pytest.mark.parametrize("length", ["abc", "-1", "10, 10", "1e3", " 12x"])
def test_a_garbled_content_length_is_refused_400_and_nothing_is_stored(store, client, length):
    response = post(client, sig=signed(), CONTENT_LENGTH=length)

    refusal(response, 400, "bad_content_length")
    assert not InboundEvent.objects.exists()


# --- 405 --------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_a_method_other_than_post_is_refused_405_with_a_json_body_and_allow(store, client, method):
    response = getattr(client, method)(URL)

    refusal(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"
    assert not InboundEvent.objects.exists()


# --- 401 with the reason's class --------------------------------------------------------------
@pytest.mark.parametrize(
    ("make_sig", "reason"),
    [
        pytest.param(lambda: None, "missing_header", id="no-header"),
        pytest.param(lambda: signed(secret="not-the-secret"), "mismatch", id="wrong-secret"),
        pytest.param(lambda: signed(age=900), "timestamp_out_of_tolerance", id="old"),
        pytest.param(lambda: "v1=" + signed().split("v1=")[1], "bad_timestamp", id="no-time"),
    ],
)
def test_a_bad_signature_is_refused_401_with_the_class_of_its_reason(
    store,
    client,
    log_lines,  # noqa: F811
    make_sig,
    reason,
):
    sig = make_sig()

    data = refusal(post(client, sig=sig), 401, "signature_invalid")

    assert data["reason"] == reason
    [line] = security_lines(log_lines)
    assert line["event"] == "webhook.refused"
    assert (line["channel"], line["status"], line["code"], line["reason"]) == (
        SLUG, 401, "signature_invalid", reason,
    )  # fmt: skip
    text = json.dumps(line) + json.dumps(data)
    assert SECRET not in text
    if sig:
        assert sig not in text and sig.split("v1=")[1] not in text
    assert "evt_9" not in text  # nothing of the body


def test_a_channel_without_a_secret_is_refused_401_no_secret(db, client):
    SalesChannelFactory(kind=ChannelKind.CUSTOM, slug=SLUG, webhook_secret="")

    data = refusal(post(client, sig=signed(secret="")), 401, "signature_invalid")

    assert data["reason"] == "no_secret"


def test_an_amazon_channel_refuses_pushes_401_not_pushed(db, client):
    SalesChannelFactory(kind=ChannelKind.AMAZON, slug=SLUG)

    data = refusal(post(client, sig=signed()), 401, "signature_invalid")

    assert data["reason"] == "not_pushed"


# --- 404, 413 ---------------------------------------------------------------------------------
def test_an_unknown_channel_is_refused_404_and_logged(store, client, log_lines):  # noqa: F811
    refusal(post(client, sig=signed(), url="/webhooks/no-such-store/"), 404, "unknown_channel")

    [line] = security_lines(log_lines)
    assert (line["channel"], line["status"], line["code"]) == (
        "no-such-store",
        404,
        "unknown_channel",
    )


def test_an_oversized_body_is_refused_413_with_a_detail(store, client, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = len(BODY) - 1

    refusal(post(client, sig=signed()), 413, "payload_too_large")


# --- chunked bodies (no Content-Length) -------------------------------------------------------
def chunked(client, stream: io.BytesIO, *, sig: str, terminated: bool = True):
    """A chunked delivery as a WSGI server that decodes chunks hands it over: no
    Content-Length, and ``wsgi.input_terminated`` when the stream ends at the last chunk."""
    extra: dict[str, Any] = {
        "CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": stream,
        "HTTP_X_SIGNATURE": sig,
    }  # fmt: skip
    if terminated:
        extra["wsgi.input_terminated"] = True
    return client.post(URL, data=b"", content_type="application/json", **extra)


def test_a_signed_chunked_body_is_read_whole_and_accepted(store, client):
    response = chunked(client, io.BytesIO(BODY), sig=signed())

    assert response.status_code == 202, response.content
    assert bytes(InboundEvent.objects.get().raw_body) == BODY


def test_a_chunked_body_over_the_limit_is_refused_413_without_reading_it_all(
    store, client, settings
):
    settings.WEBHOOK_MAX_BODY_BYTES = 1000
    stream = io.BytesIO(b"x" * 5_000_000)

    refusal(chunked(client, stream, sig=signed()), 413, "payload_too_large")

    assert stream.tell() <= 1001
    assert not InboundEvent.objects.exists()


def test_a_chunked_body_a_server_cannot_end_is_refused_411_not_read_as_empty(store, client):
    refusal(
        chunked(client, io.BytesIO(BODY), sig=signed(), terminated=False), 411, "length_required"
    )
