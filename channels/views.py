"""The webhook endpoint: verify, keep, answer. Everything else happens after the answer."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from channels.services import WebhookAnswer, webhook_receive, webhook_refusal
from config.webhook_http import Refusal, webhook_body


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
    got = webhook_body(request)
    if isinstance(got, Refusal):
        return webhook_refusal(got.status, got.code, got.detail, slug=slug)
    return webhook_receive(
        slug=slug, headers=request.headers, body=got.read, declared_length=got.declared_length
    )
