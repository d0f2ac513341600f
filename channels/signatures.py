"""Webhook signature schemes, all compared in constant time on the raw body."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from channels.adapters.base import ChannelConfig, Delivery, SignatureInvalid
from config import webhook_signing

TOLERANCE_SECONDS = 300  # signed timestamps older or newer than this are replays or clock lies
# Standard Webhooks secrets: "whsec_" + base64 of 24 to 64 random bytes (config.webhook_signing
# signs and decodes them for every app).
WHSEC_PREFIX = webhook_signing.WHSEC_PREFIX
WHSEC_KEY_BYTES = webhook_signing.WHSEC_KEY_BYTES
hmac_sha256 = webhook_signing.hmac_sha256
whsec_problem = webhook_signing.whsec_problem


def _require_secret(secret: str) -> None:
    if not secret:
        raise SignatureInvalid("channel has no webhook secret configured", code="no_secret")


def base64_hmac_body(*, secret: str, header_value: str | None, body: bytes) -> None:
    """Shopify (``X-Shopify-Hmac-Sha256``) and WooCommerce (``X-WC-Webhook-Signature``):
    base64(HMAC-SHA256(secret, raw body))."""
    _require_secret(secret)
    if not header_value:
        raise SignatureInvalid("signature header missing", code="missing_header")
    expected = base64.b64encode(hmac_sha256(secret, body)).decode()
    if not hmac.compare_digest(expected.encode(), header_value.strip().encode()):
        raise SignatureInvalid("signature mismatch")


def check_timestamp(timestamp: str | None, *, now: datetime, tolerance: int = TOLERANCE_SECONDS):
    """A signed unix timestamp within ``tolerance`` seconds of ``now``."""
    try:
        sent = int(str(timestamp))
    except (TypeError, ValueError):
        raise SignatureInvalid(
            "timestamp missing or not a unix time", code="bad_timestamp"
        ) from None
    skew = abs(now.timestamp() - sent)
    if skew > tolerance:
        raise SignatureInvalid(
            f"timestamp outside the {tolerance} s tolerance (replay?)",
            code="timestamp_out_of_tolerance",
        )
    return datetime.fromtimestamp(sent, tz=UTC)


def standard_webhooks(
    *, secret: str, headers: Mapping[str, str], body: bytes, now: datetime
) -> tuple[str, datetime]:
    """Standard Webhooks (BigCommerce): ``webhook-signature: v1,<base64 HMAC of
    "id.timestamp.body">``, possibly several space-separated. Returns (webhook-id, sent at)."""
    _require_secret(secret)
    key = standard_webhooks_key(secret)
    msg_id = headers.get("webhook-id")
    if not msg_id:
        raise SignatureInvalid("webhook-id header missing", code="missing_header")
    sent_at = check_timestamp(headers.get("webhook-timestamp"), now=now)
    expected = webhook_signing.signature(
        key=key, msg_id=msg_id, timestamp=str(headers.get("webhook-timestamp")), body=body
    )
    offered = [
        sig.split(",", 1)[1]
        for sig in (headers.get("webhook-signature") or "").split()
        if sig.startswith("v1,")
    ]
    if not offered:
        raise SignatureInvalid(
            "webhook-signature header missing or without a v1 signature", code="missing_header"
        )
    if not any(hmac.compare_digest(expected.encode(), sig.encode()) for sig in offered):
        raise SignatureInvalid("signature mismatch")
    return msg_id, sent_at


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the bytes after ``whsec_`` (base64), or the
    secret itself when it has no prefix. A malformed stored one refuses, never crashes."""
    if not secret.startswith(WHSEC_PREFIX):
        return secret.encode()
    try:
        return webhook_signing.whsec_key(secret)
    except webhook_signing.MalformedSecret:
        raise SignatureInvalid(
            "channel's webhook secret is malformed", code="malformed_secret"
        ) from None


def verify_rotating(
    verify: Callable[..., Delivery],
    channel: ChannelConfig,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
) -> tuple[Delivery, str]:
    """An adapter's ``verify`` with the channel's secret, then, if that fails and a previous
    secret is still in its grace window, with that one: every scheme accepts either while a
    secret rotates. Returns (delivery, "current" or "previous"). A refusal is the current
    secret's, so an answer never tells which secrets exist or which one came close."""
    try:
        return verify(channel, headers, body, now=now), "current"
    except SignatureInvalid as refusal:
        if not channel.previous_secret:
            raise
        previous = dataclasses.replace(channel, secret=channel.previous_secret)
        try:
            return verify(previous, headers, body, now=now), "previous"
        except SignatureInvalid:
            raise refusal from None


def timestamped_hmac(*, secret: str, header_value: str | None, body: bytes, now: datetime):
    """Custom storefronts: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`` (Stripe's scheme;
    several v1 values allowed while a secret rotates). Returns the signed time."""
    _require_secret(secret)
    if not header_value:
        raise SignatureInvalid("signature header missing", code="missing_header")
    parts: dict[str, list[str]] = {}
    for item in header_value.split(","):
        name, _, value = item.strip().partition("=")
        parts.setdefault(name, []).append(value)
    timestamp = (parts.get("t") or [""])[0]
    sent_at = check_timestamp(timestamp, now=now)
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    if not any(hmac.compare_digest(expected.encode(), v.encode()) for v in parts.get("v1", [])):
        raise SignatureInvalid("signature mismatch")
    return sent_at


def shared_header(*, expected_name: str, expected_value: str, headers: Mapping[str, str]) -> None:
    """A fixed secret header set when the webhook was registered (BigCommerce without a
    client secret)."""
    if not expected_name or not expected_value:
        raise SignatureInvalid("channel has no auth header configured", code="no_secret")
    offered = headers.get(expected_name)
    if not offered:
        raise SignatureInvalid("auth header missing", code="missing_header")
    if not hmac.compare_digest(offered.encode(), expected_value.encode()):
        raise SignatureInvalid("auth header wrong", code="mismatch")


def sign_custom(*, secret: str, body: bytes, timestamp: int) -> str:
    """The header value a custom storefront sends (used by the demo and by integrators' docs)."""
    sig = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={sig}"
