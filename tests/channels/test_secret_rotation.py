"""Webhook secret rotation and ``whsec_`` secrets (issue 10, item 9).

When a channel's webhook secret is replaced (admin, ``add_channel``), the old one stays accepted
for ``WEBHOOK_SECRET_GRACE_HOURS``, for every signature scheme; it is never shown, and a refusal
never tells whether a previous secret exists. A malformed ``whsec_`` secret is refused when saved,
and a stored one refuses deliveries instead of crashing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from channels import signatures
from channels.adapters.base import SignatureInvalid
from channels.models import ChannelKind, InboundEvent, SalesChannel
from channels.services import sales_channel_upsert
from tests.channels.test_webhook import metric
from tests.factories import SalesChannelFactory

SLUG = "rotating"
URL = f"/webhooks/{SLUG}/"
OLD, NEW = "old-signing-secret-1", "new-signing-secret-2"


def b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def shopify(body: bytes, secret: str) -> dict[str, str]:
    return {"HTTP_X_SHOPIFY_HMAC_SHA256": b64_hmac(secret.encode(), body),
            "HTTP_X_SHOPIFY_TOPIC": "orders/create",
            "HTTP_X_SHOPIFY_WEBHOOK_ID": "w-1"}  # fmt: skip


def woocommerce(body: bytes, secret: str) -> dict[str, str]:
    return {"HTTP_X_WC_WEBHOOK_SIGNATURE": b64_hmac(secret.encode(), body),
            "HTTP_X_WC_WEBHOOK_TOPIC": "order.created",
            "HTTP_X_WC_WEBHOOK_DELIVERY_ID": "d-1"}  # fmt: skip


def bigcommerce(body: bytes, secret: str) -> dict[str, str]:
    ts = int(time.time())
    key = signatures.standard_webhooks_key(secret)
    signed = f"msg-1.{ts}.".encode() + body
    return {"HTTP_WEBHOOK_ID": "msg-1", "HTTP_WEBHOOK_TIMESTAMP": str(ts),
            "HTTP_WEBHOOK_SIGNATURE": "v1," + b64_hmac(key, signed)}  # fmt: skip


def custom(body: bytes, secret: str) -> dict[str, str]:
    return {"HTTP_X_SIGNATURE": signatures.sign_custom(secret=secret, body=body,
                                                       timestamp=int(time.time()))}  # fmt: skip


SCHEMES: dict[str, Callable[[bytes, str], dict[str, str]]] = {
    ChannelKind.SHOPIFY: shopify,
    ChannelKind.WOOCOMMERCE: woocommerce,
    ChannelKind.BIGCOMMERCE: bigcommerce,
    ChannelKind.CUSTOM: custom,
}
BODY = json.dumps({"id": "evt-1", "scope": "store/order/created", "topic": "order.created",
                   "data": {"type": "order", "id": 1}, "order": {}}).encode()  # fmt: skip


def rotated(kind: str, *, expires_in: timedelta) -> SalesChannel:
    return SalesChannelFactory(
        kind=kind, slug=SLUG, webhook_secret=NEW, previous_webhook_secret=OLD,
        previous_secret_expires_at=timezone.now() + expires_in,
    )  # fmt: skip


def post(client, kind: str, secret: str):
    return client.post(
        URL, data=BODY, content_type="application/json", **SCHEMES[kind](BODY, secret)
    )


@pytest.mark.parametrize("kind", list(SCHEMES))
def test_the_previous_secret_is_accepted_during_its_grace_window(db, client, kind):
    rotated(kind, expires_in=timedelta(hours=1))

    assert post(client, kind, OLD).status_code == 202
    InboundEvent.objects.all().delete()
    assert post(client, kind, NEW).status_code == 202


@pytest.mark.parametrize("kind", list(SCHEMES))
def test_the_previous_secret_is_refused_once_its_grace_window_is_over(db, client, kind):
    rotated(kind, expires_in=timedelta(seconds=-1))

    response = post(client, kind, OLD)

    assert response.status_code == 401
    assert response.json()["reason"] == "mismatch"
    assert not InboundEvent.objects.exists()


@pytest.mark.parametrize("kind", list(SCHEMES))
def test_a_refusal_does_not_tell_whether_a_previous_secret_exists(db, client, kind):
    rotated(kind, expires_in=timedelta(hours=1))
    with_previous = post(client, kind, "forged-secret").json()
    SalesChannel.objects.filter(slug=SLUG).update(previous_webhook_secret="")
    without_previous = post(client, kind, "forged-secret").json()

    assert with_previous == without_previous
    assert OLD not in json.dumps(with_previous)


def test_a_match_on_the_previous_secret_is_counted_and_logged_without_the_secret(
    db, client, caplog
):
    rotated(ChannelKind.SHOPIFY, expires_in=timedelta(hours=1))
    labels = {"channel": SLUG, "secret": "previous"}
    before = metric(client, "ingest_signature_matches_total", **labels)

    with caplog.at_level("INFO", logger="security"):
        assert post(client, ChannelKind.SHOPIFY, OLD).status_code == 202

    assert metric(client, "ingest_signature_matches_total", **labels) == before + 1
    assert "webhook.previous_secret_matched" in caplog.text
    assert OLD not in caplog.text and NEW not in caplog.text


# --- replacing a secret keeps the old one for the grace window -------------------------------
def test_replacing_a_secret_moves_the_old_one_to_previous_for_the_grace_window(db, settings):
    settings.WEBHOOK_SECRET_GRACE_HOURS = 72
    channel = SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug=SLUG, webhook_secret=OLD)
    before = timezone.now()

    sales_channel_upsert(slug=SLUG, kind=ChannelKind.SHOPIFY, webhook_secret=NEW)

    channel.refresh_from_db()
    assert (channel.webhook_secret, channel.previous_webhook_secret) == (NEW, OLD)
    expires = channel.previous_secret_expires_at
    assert before + timedelta(hours=72) <= expires <= timezone.now() + timedelta(hours=72)
    assert channel.previous_secret_accepted() == OLD
    assert channel.previous_secret_accepted(now=expires) == ""


def test_setting_the_same_secret_again_keeps_no_previous_one(db):
    channel = SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug=SLUG, webhook_secret=OLD)

    sales_channel_upsert(slug=SLUG, kind=ChannelKind.SHOPIFY, webhook_secret=OLD)

    channel.refresh_from_db()
    assert (channel.previous_webhook_secret, channel.previous_secret_expires_at) == ("", None)


@pytest.mark.parametrize("kind", list(SCHEMES))
def test_clearing_the_secret_ends_the_grace_window_of_the_previous_one(db, client, kind):
    channel = rotated(kind, expires_in=timedelta(hours=1))
    assert post(client, kind, OLD).status_code == 202  # still in its window

    channel.webhook_secret_replace("")
    channel.save()

    channel.refresh_from_db()
    assert (channel.webhook_secret, channel.previous_webhook_secret) == ("", "")
    assert channel.previous_secret_expires_at is None
    answer = post(client, kind, OLD)
    assert answer.status_code == 401 and answer.json()["reason"] == "no_secret"


def test_add_channel_with_a_new_secret_says_until_when_the_old_one_is_accepted(db):
    SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug=SLUG, webhook_secret=OLD)
    out = io.StringIO()

    call_command("add_channel", "--kind", "shopify", "--slug", SLUG, "--secret", NEW, stdout=out)

    channel = SalesChannel.objects.get(slug=SLUG)
    assert channel.previous_webhook_secret == OLD
    assert "the previous one is accepted until" in out.getvalue()
    assert OLD not in out.getvalue() and NEW not in out.getvalue()


def test_admin_replacement_keeps_the_old_secret_and_says_until_when_never_what(
    db, client, ops_user, cs_user
):
    channel = SalesChannelFactory(
        kind=ChannelKind.SHOPIFY, slug=SLUG, name="Rot", webhook_secret=OLD
    )
    url = reverse("admin:channels_saleschannel_change", args=[channel.pk])
    client.force_login(ops_user)
    data = {
        "name": "Rot", "slug": SLUG, "kind": "shopify", "is_active": "on",
        "default_currency": "USD", "rounding": "ROUND_HALF_UP", "webhook_secret": NEW,
        "auth_header_name": "", "auth_header_value": "", "api_base_url": "", "api_version": "",
        "credentials_json": "", "_save": "Save",
    }  # fmt: skip

    assert client.post(url, data).status_code == 302

    channel.refresh_from_db()
    assert (channel.webhook_secret, channel.previous_webhook_secret) == (NEW, OLD)
    until = channel.previous_secret_expires_at.astimezone(UTC)
    for user in (ops_user, cs_user):
        client.force_login(user)
        page = client.get(url).content.decode()
        assert f"Previous secret: accepted until {until:%Y-%m-%d %H:%M} UTC" in page
        assert OLD not in page and NEW not in page


# --- whsec_ secrets --------------------------------------------------------------------------
GOOD_WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()
BAD_WHSEC = {
    "not-base64": "whsec_not*base64!",
    "too-short": "whsec_" + base64.b64encode(b"k" * 10).decode(),
    "too-long": "whsec_" + base64.b64encode(b"k" * 65).decode(),
    "truncated": GOOD_WHSEC[:-3],
}


def test_a_good_whsec_secret_signs_with_its_decoded_key():
    now = datetime.now(UTC)
    headers = {k.removeprefix("HTTP_").lower().replace("_", "-"): v
               for k, v in bigcommerce(BODY, GOOD_WHSEC).items()}  # fmt: skip

    msg_id, _ = signatures.standard_webhooks(secret=GOOD_WHSEC, headers=headers, body=BODY, now=now)

    assert msg_id == "msg-1"
    assert signatures.whsec_problem(GOOD_WHSEC) is None


@pytest.mark.parametrize("secret", list(BAD_WHSEC.values()), ids=list(BAD_WHSEC))
def test_a_malformed_stored_whsec_secret_refuses_with_a_reason_and_never_crashes(secret):
    ts = int(time.time())
    headers = {"webhook-id": "m", "webhook-timestamp": str(ts), "webhook-signature": "v1,AAAA"}

    with pytest.raises(SignatureInvalid) as refused:
        signatures.standard_webhooks(
            secret=secret, headers=headers, body=b"{}", now=datetime.now(UTC)
        )

    assert refused.value.code == "malformed_secret"
    assert secret not in refused.value.reason


@pytest.mark.parametrize("secret", list(BAD_WHSEC.values()), ids=list(BAD_WHSEC))
def test_a_malformed_whsec_secret_is_refused_by_the_model(db, secret):
    channel = SalesChannel(
        kind=ChannelKind.BIGCOMMERCE, slug="bc", name="BC", webhook_secret=secret
    )

    with pytest.raises(ValidationError) as refused:
        channel.full_clean()

    assert "whsec_" in " ".join(refused.value.message_dict["webhook_secret"])


@pytest.mark.parametrize("secret", list(BAD_WHSEC.values()), ids=list(BAD_WHSEC))
def test_add_channel_refuses_a_malformed_whsec_secret(db, secret):
    with pytest.raises(CommandError, match=r"--secret: A whsec_ secret must"):
        call_command("add_channel", "--kind", "bigcommerce", "--slug", "bc", "--secret", secret,
                     "--api-url", "https://api.bigcommerce.com/stores/x",
                     stdout=io.StringIO())  # fmt: skip

    assert not SalesChannel.objects.exists()


def test_the_admin_refuses_a_malformed_whsec_secret_with_a_form_error(db, client, ops_user):
    client.force_login(ops_user)

    response = client.post(
        reverse("admin:channels_saleschannel_add"),
        {
            "name": "BC", "slug": "bc", "kind": "bigcommerce", "is_active": "on",
            "default_currency": "USD", "rounding": "ROUND_HALF_UP",
            "webhook_secret": BAD_WHSEC["too-short"], "auth_header_name": "",
            "auth_header_value": "", "api_base_url": "", "api_version": "",
            "credentials_json": "", "_save": "Save",
        },
    )  # fmt: skip

    assert response.status_code == 200
    assert "A whsec_ secret must decode to 24 to 64 bytes" in response.content.decode()
    assert BAD_WHSEC["too-short"] not in response.content.decode()
    assert not SalesChannel.objects.exists()


def test_a_stored_malformed_whsec_secret_answers_401_malformed_secret(db, client):
    SalesChannelFactory(
        kind=ChannelKind.BIGCOMMERCE, slug=SLUG, webhook_secret=BAD_WHSEC["not-base64"]
    )

    response = post(client, ChannelKind.BIGCOMMERCE, GOOD_WHSEC)

    assert response.status_code == 401
    assert response.json()["reason"] == "malformed_secret"
