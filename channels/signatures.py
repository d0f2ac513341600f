"""Webhook signature schemes, all compared in constant time on the raw body."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime

from channels.adapters.base import SignatureInvalid

TOLERANCE_SECONDS = 300  # signed timestamps older or newer than this are replays or clock lies


def hmac_sha256(secret: str | bytes, message: bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).digest()


def _require_secret(secret: str) -> None:
    if not secret:
        raise SignatureInvalid("channel has no webhook secret configured")


def base64_hmac_body(*, secret: str, header_value: str | None, body: bytes) -> None:
    """Shopify (``X-Shopify-Hmac-Sha256``) and WooCommerce (``X-WC-Webhook-Signature``):
    base64(HMAC-SHA256(secret, raw body))."""
    _require_secret(secret)
    if not header_value:
        raise SignatureInvalid("signature header missing")
    expected = base64.b64encode(hmac_sha256(secret, body)).decode()
    if not hmac.compare_digest(expected.encode(), header_value.strip().encode()):
        raise SignatureInvalid("signature mismatch")


def check_timestamp(timestamp: str | None, *, now: datetime, tolerance: int = TOLERANCE_SECONDS):
    """A signed unix timestamp within ``tolerance`` seconds of ``now``."""
    try:
        sent = int(str(timestamp))
    except (TypeError, ValueError):
        raise SignatureInvalid("timestamp missing or not a unix time") from None
    skew = abs(now.timestamp() - sent)
    if skew > tolerance:
        raise SignatureInvalid(f"timestamp outside the {tolerance} s tolerance (replay?)")
    return datetime.fromtimestamp(sent, tz=UTC)


def standard_webhooks(
    *, secret: str, headers: Mapping[str, str], body: bytes, now: datetime
) -> tuple[str, datetime]:
    """Standard Webhooks (BigCommerce): ``webhook-signature: v1,<base64 HMAC of
    "id.timestamp.body">``, possibly several space-separated. Returns (webhook-id, sent at)."""
    _require_secret(secret)
    msg_id = headers.get("webhook-id")
    if not msg_id:
        raise SignatureInvalid("webhook-id header missing")
    sent_at = check_timestamp(headers.get("webhook-timestamp"), now=now)
    signed = f"{msg_id}.{headers.get('webhook-timestamp')}.".encode() + body
    key = secret.encode()
    if secret.startswith("whsec_"):  # the spec's own secret format: base64 after the prefix
        key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac_sha256(key, signed)).decode()
    offered = [
        sig.split(",", 1)[1]
        for sig in (headers.get("webhook-signature") or "").split()
        if sig.startswith("v1,")
    ]
    if not offered:
        raise SignatureInvalid("webhook-signature header missing or without a v1 signature")
    if not any(hmac.compare_digest(expected.encode(), sig.encode()) for sig in offered):
        raise SignatureInvalid("signature mismatch")
    return msg_id, sent_at


def timestamped_hmac(*, secret: str, header_value: str | None, body: bytes, now: datetime):
    """Custom storefronts: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`` (Stripe's scheme;
    several v1 values allowed while a secret rotates). Returns the signed time."""
    _require_secret(secret)
    if not header_value:
        raise SignatureInvalid("signature header missing")
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
        raise SignatureInvalid("channel has no auth header configured")
    offered = headers.get(expected_name) or ""
    if not hmac.compare_digest(offered.encode(), expected_value.encode()):
        raise SignatureInvalid("auth header missing or wrong")


def sign_custom(*, secret: str, body: bytes, timestamp: int) -> str:
    """The header value a custom storefront sends (used by the demo and by integrators' docs)."""
    sig = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={sig}"
