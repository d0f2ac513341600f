"""Standard Webhooks (https://www.standardwebhooks.com/) signing, shared by the apps that verify
(``channels.signatures``: BigCommerce) and those that sign (``fulfillment``: the CRM webhook).

A message is signed as ``base64(HMAC-SHA256(key, f"{id}.{timestamp}.".encode() + body))`` and
sent as ``webhook-signature: v1,<that>``. The key is the bytes after ``whsec_`` (base64) of a
``whsec_`` secret, or the secret's own bytes when it has no prefix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

WHSEC_PREFIX = "whsec_"
WHSEC_KEY_BYTES = (24, 64)


class MalformedSecret(ValueError):
    """A ``whsec_`` secret that cannot sign anything (its message says why)."""


def hmac_sha256(secret: str | bytes, message: bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).digest()


def whsec_problem(secret: str) -> str | None:
    """Why a ``whsec_`` secret cannot sign anything (None when it can, or has no prefix)."""
    if not secret.startswith(WHSEC_PREFIX):
        return None
    try:
        key = base64.b64decode(secret.removeprefix(WHSEC_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return "A whsec_ secret must be valid base64 after the whsec_ prefix."
    low, high = WHSEC_KEY_BYTES
    if not low <= len(key) <= high:
        return (
            f"A whsec_ secret must decode to {low} to {high} bytes; this one decodes to "
            f"{len(key)}. Paste the whole secret the store shows."
        )
    return None


def whsec_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret; ``MalformedSecret`` when it has none."""
    if not secret.startswith(WHSEC_PREFIX):
        return secret.encode()
    problem = whsec_problem(secret)
    if problem is not None:
        raise MalformedSecret(problem)
    return base64.b64decode(secret.removeprefix(WHSEC_PREFIX))


def signature(*, key: bytes, msg_id: str, timestamp: str | int, body: bytes) -> str:
    """The base64 signature of one message (without the ``v1,`` prefix)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac_sha256(key, signed)).decode()


def sign_headers(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``."""
    sig = signature(key=whsec_key(secret), msg_id=msg_id, timestamp=timestamp, body=body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{sig}",
    }
