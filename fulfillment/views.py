"""The carriers' webhook endpoint: verify, keep, answer (``fulfillment.carrier_events``)."""

from __future__ import annotations

import re

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from fulfillment.carrier_events import (
    WebhookAnswer,
    carrier_webhook_receive,
    carrier_webhook_refusal,
)

_DIGITS = re.compile(r"[0-9]{1,18}")
READ_CHUNK = 64 * 1024


@csrf_exempt
def carrier_webhook(request: HttpRequest, carrier: str) -> JsonResponse:
    """``POST /webhooks/carriers/<carrier>/``: 200 ``{"status": "accepted" | "duplicate"}``;
    refusals answer ``{"code", "detail"}``: 400 bad Content-Length, 401 missing or wrong
    signature (or no secret configured), 404 unknown carrier, 405 not a POST, 411 a chunked
    body this server cannot read, 413 too large, 503 when the inbox could not be written
    (docs/webhooks.md, "Carrier webhooks")."""
    answer = _receive(request, carrier)
    response = JsonResponse(answer.body, status=answer.status)
    if answer.status == 405:
        response["Allow"] = "POST"
    return response


def _receive(request: HttpRequest, carrier: str) -> WebhookAnswer:
    if request.method != "POST":
        return carrier_webhook_refusal(
            405, "method_not_allowed", "Only POST is accepted here", carrier=carrier
        )
    raw_length = str(request.META.get("CONTENT_LENGTH") or "").strip()
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if raw_length and not _DIGITS.fullmatch(raw_length):
        # Django reads such a body as empty: refuse it as what it is, not as a bad signature.
        return carrier_webhook_refusal(
            400, "bad_content_length", "Content-Length must be one whole number of bytes",
            carrier=carrier,
        )  # fmt: skip
    if chunked and not raw_length:
        if not request.META.get("wsgi.input_terminated"):
            # Only a server that ends the stream at the last chunk (gunicorn) can be read
            # without a length; elsewhere the body would read as empty.
            return carrier_webhook_refusal(
                411, "length_required", "This server needs a Content-Length", carrier=carrier
            )
        return carrier_webhook_receive(
            carrier=carrier, headers=request.headers, body=lambda: _read_bounded(request)
        )
    return carrier_webhook_receive(
        carrier=carrier,
        headers=request.headers,
        # Read only once the carrier and the declared size pass: an oversized body is refused
        # unread (and never reaches Django's own upload limit, which would answer 400).
        body=lambda: request.body,
        declared_length=int(raw_length or 0),
    )


def _read_bounded(request: HttpRequest) -> bytes:
    """A chunked body from the WSGI stream, at most one byte past ``WEBHOOK_MAX_BODY_BYTES``
    (enough for the caller to refuse it with 413): never read unbounded."""
    stream = request.META["wsgi.input"]
    room = settings.WEBHOOK_MAX_BODY_BYTES + 1
    parts: list[bytes] = []
    while room > 0:
        part = stream.read(min(READ_CHUNK, room))
        if not part:
            break
        parts.append(part)
        room -= len(part)
    return b"".join(parts)
