"""The webhook endpoint: verify, keep, answer. Everything else happens after the answer."""

from __future__ import annotations

import re

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from channels.services import WebhookAnswer, webhook_receive, webhook_refusal

_DIGITS = re.compile(r"[0-9]{1,18}")
READ_CHUNK = 64 * 1024


@csrf_exempt
def webhook(request: HttpRequest, slug: str) -> JsonResponse:
    """``POST /webhooks/<slug>/``: 202 accepted, 200 duplicate or ping; refusals answer
    ``{"code", "detail"}``: 400 bad Content-Length, 401 bad signature, 404 unknown channel,
    405 not a POST, 411 a chunked body this server cannot read, 413 too large, 503 when the
    inbox could not be written (docs/webhooks.md)."""
    answer = _receive(request, slug)
    response = JsonResponse(answer.body, status=answer.status)
    if answer.status == 405:
        response["Allow"] = "POST"
    return response


def _receive(request: HttpRequest, slug: str) -> WebhookAnswer:
    if request.method != "POST":
        return webhook_refusal(405, "method_not_allowed", "Only POST is accepted here", slug=slug)
    raw_length = str(request.META.get("CONTENT_LENGTH") or "").strip()
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if raw_length and not _DIGITS.fullmatch(raw_length):
        # Django reads such a body as empty: refuse it as what it is, not as a bad signature.
        return webhook_refusal(
            400, "bad_content_length", "Content-Length must be one whole number of bytes",
            slug=slug,
        )  # fmt: skip
    if chunked and not raw_length:
        if not request.META.get("wsgi.input_terminated"):
            # Only a server that ends the stream at the last chunk (gunicorn) can be read
            # without a length; elsewhere the body would read as empty.
            return webhook_refusal(
                411, "length_required", "This server needs a Content-Length", slug=slug
            )
        return webhook_receive(
            slug=slug, headers=request.headers, body=lambda: _read_bounded(request)
        )
    return webhook_receive(
        slug=slug,
        headers=request.headers,
        # Read only after the channel and the declared size pass: an oversized body is refused
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
