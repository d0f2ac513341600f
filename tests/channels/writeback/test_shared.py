"""What the five tracking write-backs share (``channels.writeback``): a channel switched off
after its action was written is skipped the same way by every kind, a channel without its API
settings refuses, the one session never repeats a POST, a refusal carries the vendor's reason
without personal data, and times are written one way."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from channels import writeback
from channels.adapters.base import ChannelConfig
from orders.feedback import writeback_for
from tests.channels.writeback.helpers import an_update
from tests.factories import SalesChannelFactory

pytestmark = pytest.mark.django_db

KINDS = ("shopify", "bigcommerce", "amazon", "woocommerce", "custom")


def ready_channel(kind: str, server: HTTPServer, **fields):
    """A channel of ``kind`` with every setting its write-back needs, pointing at ``server``."""
    base = server.url_for("/").rstrip("/")
    settings_of = {
        "shopify": {"api_base_url": base, "api_version": "2025-04",
                    "credentials": {"access_token": "shpat_loopback"}},
        "bigcommerce": {"api_base_url": base, "credentials": {"access_token": "bc-token"}},
        "amazon": {"api_base_url": base, "credentials": {
            "client_id": "amzn1.application-oa2-client.example", "client_secret": "secret",
            "refresh_token": "Atzr|IwEBIExample", "marketplace_ids": "ATVPDKIKX0DER"}},
        "woocommerce": {"api_base_url": base,
                        "credentials": {"consumer_key": "ck_x", "consumer_secret": "cs_x"}},
        "custom": {"webhook_secret": "whsec_x", "tracking_callback_url": f"{base}/hook"},
    }  # fmt: skip
    return SalesChannelFactory(kind=kind, **{**settings_of[kind], **fields})


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("switch", ["tracking_writeback", "is_active"])
def test_a_channel_switched_off_after_its_action_was_written_is_skipped(httpserver, kind, switch):
    channel = ready_channel(kind, httpserver)
    push = writeback_for(kind)
    assert push is not None and push.configured(channel.pk)
    setattr(channel, switch, False)
    channel.save()
    assert not push.configured(channel.pk)  # no new action is written
    for ref in ("", "4711"):  # a parcel's first write-back and a later one
        assert push.push(an_update(channel.pk, channel_ref=ref)) == {
            "channel_ref": ref, "outcome": "skipped",
            "reason": "tracking write-back is off for this channel",
        }  # fmt: skip
    assert httpserver.log == []  # nothing was sent


@pytest.mark.parametrize("kind", KINDS)
def test_a_channel_without_its_settings_or_gone_refuses_in_words(httpserver, kind):
    push = writeback_for(kind)
    assert push is not None
    bare = SalesChannelFactory(kind=kind)
    assert not push.configured(bare.pk)
    with pytest.raises(writeback.WritebackError) as unready:
        push.push(an_update(bare.pk))
    assert unready.value.retryable is False
    assert f"{kind} channel {bare.pk} needs " in str(unready.value)
    other = ready_channel("custom" if kind != "custom" else "woocommerce", httpserver)
    with pytest.raises(writeback.WritebackError, match=f"not {kind}") as wrong_kind:
        push.push(an_update(other.pk))
    assert wrong_kind.value.retryable is False
    with pytest.raises(writeback.WritebackError, match="does not exist") as gone:
        push.push(an_update(999_999))
    assert gone.value.retryable is False
    assert httpserver.log == []


# --- the session and call() --------------------------------------------------------------------
def loopback_config(server: HTTPServer) -> ChannelConfig:
    return ChannelConfig(id=1, slug="loop", kind="custom", api_base_url=server.url_for("/"))


@pytest.mark.parametrize("status", [429, 503])
def test_the_session_repeats_a_get_and_a_put_but_never_a_post(httpserver, status):
    for method in ("GET", "PUT", "POST"):
        httpserver.expect_request("/r", method=method).respond_with_data("busy", status=status)
    with writeback.session(loopback_config(httpserver)) as http:
        for method in ("GET", "PUT", "POST"):
            with pytest.raises(writeback.WritebackError) as failed:
                writeback.call(http, method, httpserver.url_for("/r"), what=f"{method} r")
            assert failed.value.retryable is True and failed.value.status == status
    sent = [request.method for request, _ in httpserver.log]
    tries = 1 + writeback.RETRIES
    assert sent == ["GET"] * tries + ["PUT"] * tries + ["POST"]


def test_a_post_that_timed_out_is_not_sent_again_in_the_session(httpserver, settings):
    settings.CHANNEL_HTTP_TIMEOUT = (2.0, 0.3)
    heard = []

    def slow(request: Request) -> Response:
        heard.append(request.method)
        time.sleep(0.6)  # processed, answered after our read timeout
        return Response("", status=201)

    httpserver.expect_request("/create", method="POST").respond_with_handler(slow)
    with writeback.session(loopback_config(httpserver)) as http:
        with pytest.raises(writeback.WritebackError) as failed:
            writeback.call(http, "POST", httpserver.url_for("/create"), what="create")
    assert failed.value.retryable is True and failed.value.ambiguous is True
    assert heard == ["POST"]


@pytest.mark.parametrize("status", [408, 425, 429])
def test_408_425_429_are_retryable_not_refusals(httpserver, status):
    httpserver.expect_request("/hook", method="POST").respond_with_json(
        {"code": "slow_down", "message": "try later"}, status=status
    )
    with writeback.session(loopback_config(httpserver)) as http:
        with pytest.raises(writeback.WritebackError) as failed:
            writeback.call(http, "POST", httpserver.url_for("/hook"), what="callback")
    assert failed.value.retryable is True and failed.value.status == status


def test_a_refusal_carries_the_vendors_reason_and_an_accepted_status_is_an_answer(httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_json(
        {"code": "unknown_order", "message": "No such order for ann@example.com",
         "data": {"customer": "Ann Example"}}, status=422,
    )  # fmt: skip
    httpserver.expect_request("/gone", method="GET").respond_with_json({}, status=404)
    with writeback.session(loopback_config(httpserver)) as http:
        with pytest.raises(writeback.WritebackError) as refused:
            writeback.call(http, "POST", httpserver.url_for("/hook"), what="callback")
        answer = writeback.call(http, "GET", httpserver.url_for("/gone"), what="x", accept=[404])
    assert answer.status_code == 404
    error = str(refused.value)
    assert refused.value.retryable is False and refused.value.status == 422
    assert "HTTP 422 from localhost" in error and "/hook" in error
    assert "unknown_order: No such order for [email]" in error
    assert "ann@" not in error and "Ann Example" not in error


# --- vendor_reason ------------------------------------------------------------------------------
def answer(body: bytes, status: int = 422) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, body
    return response


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # Shopify
        (b'{"errors": {"base": ["Fulfillment order 1 is closed."], "line_items": ["is empty"]}}',
         "Fulfillment order 1 is closed.; line_items is empty"),
        (b'{"errors": "[API] Invalid API key or access token"}',
         "[API] Invalid API key or access token"),
        # BigCommerce
        (b'[{"status": 400, "message": "The field \'order_address_id\' is invalid."}]',
         "The field 'order_address_id' is invalid."),
        # WooCommerce, custom storefronts
        (b'{"code": "rest_no_route", "message": "No route.", "data": {"status": 404}}',
         "rest_no_route: No route."),
        # Amazon
        (b'{"errors": [{"code": "InvalidInput", "message": "Invalid carrierCode"}]}',
         "InvalidInput: Invalid carrierCode"),
        (b'{"code": "archived"}', "archived"),
        (b'{"order": {"email": "bob@example.com", "name": "Bob"}}', ""),
        (b"<html>Bad gateway</html>", ""),
        (b"", ""),
    ],
)  # fmt: skip
def test_vendor_reason_reads_the_error_fields_only(body, reason):
    assert writeback.vendor_reason(answer(body)) == reason


def test_vendor_reason_masks_emails_and_is_short():
    body = b'{"errors": ["Contact bob.norman@mail.example.com", "' + b"x" * 400 + b'"]}'
    reason = writeback.vendor_reason(answer(body))
    assert reason.startswith("Contact [email]; xxx") and "bob" not in reason
    assert len(reason) == writeback.REASON_MAX


# --- times ---------------------------------------------------------------------------------------
def test_one_time_format_to_the_second_in_utc():
    eastern = timezone(timedelta(hours=-5))
    when = datetime(2026, 11, 2, 7, 0, 0, 250_000, tzinfo=eastern)
    assert writeback.timestamp(when) == "2026-11-02T12:00:00Z"
    assert writeback.timestamp(None) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        writeback.timestamp(datetime(2026, 11, 2, 12, 0))  # noqa: DTZ001 - the naive case
    noon = datetime(2026, 11, 2, 12, tzinfo=UTC)
    assert writeback.parse_time("2026-11-02T07:00:00-05:00") == noon
    assert writeback.parse_time("2026-11-02T12:00:00") is None and writeback.parse_time("") is None
