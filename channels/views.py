"""The webhook endpoint: verify, keep, answer. Everything else happens after the answer."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from channels.services import webhook_receive


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, slug: str) -> JsonResponse:
    """``POST /webhooks/<slug>/``: 202 accepted, 200 duplicate or ping, 401 bad signature,
    404 unknown channel, 413 too large, 503 when the inbox could not be written."""
    answer = webhook_receive(
        slug=slug,
        headers=request.headers,
        # Read only after the channel and the declared size pass: an oversized body is refused
        # unread (and never reaches Django's own upload limit, which would answer 400).
        body=lambda: request.body,
        declared_length=int(request.META.get("CONTENT_LENGTH") or 0),
    )
    return JsonResponse(answer.body, status=answer.status)
