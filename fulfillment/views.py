"""The carriers' webhook endpoint: verify, keep, answer (``fulfillment.carrier_events``)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from config.webhook_http import Refusal, webhook_body
from fulfillment.carrier_events import (
    WebhookAnswer,
    carrier_webhook_receive,
    carrier_webhook_refusal,
)


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
    got = webhook_body(request)
    if isinstance(got, Refusal):
        return carrier_webhook_refusal(got.status, got.code, got.detail, carrier=carrier)
    return carrier_webhook_receive(
        carrier=carrier, headers=request.headers, body=got.read, declared_length=got.declared_length
    )
