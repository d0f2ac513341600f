"""Reading a webhook's body off the request, the same way for every webhook endpoint (the
channels' ``/webhooks/<slug>/`` and the carriers' ``/webhooks/carriers/<carrier>/``).

``webhook_body(request)`` is either a ``Refusal`` (405 not a POST, 400 a Content-Length that is
not one whole number, 411 a chunked body this server cannot read) or a ``Body``: a callable
that reads it (called only once the endpoint knows its sender and that the declared size is
within ``WEBHOOK_MAX_BODY_BYTES``, so an oversized body is refused unread) and the declared
length. A chunked body is read from the WSGI stream at most one byte past the limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

_DIGITS = re.compile(r"[0-9]{1,18}")
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    detail: str


@dataclass(frozen=True)
class Body:
    read: Callable[[], bytes]
    declared_length: int = 0


def webhook_body(request: HttpRequest) -> Refusal | Body:
    if request.method != "POST":
        return Refusal(405, "method_not_allowed", "Only POST is accepted here")
    raw_length = str(request.META.get("CONTENT_LENGTH") or "").strip()
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if raw_length and not _DIGITS.fullmatch(raw_length):
        # Django reads such a body as empty: refuse it as what it is, not as a bad signature.
        return Refusal(
            400, "bad_content_length", "Content-Length must be one whole number of bytes"
        )
    if chunked and not raw_length:
        if not request.META.get("wsgi.input_terminated"):
            # Only a server that ends the stream at the last chunk (gunicorn) can be read
            # without a length; elsewhere the body would read as empty.
            return Refusal(411, "length_required", "This server needs a Content-Length")
        return Body(read=lambda: read_bounded(request))
    # Read only once the sender and the declared size pass: an oversized body is refused
    # unread (and never reaches Django's own upload limit, which would answer 400).
    return Body(read=lambda: request.body, declared_length=int(raw_length or 0))


def read_bounded(request: HttpRequest) -> bytes:
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
