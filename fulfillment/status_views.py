"""The customer's order status page (``/status/<token>/``): no sign-in, the signed token is the
key. A wrong, altered, expired or unknown token gets one and the same plain 404, so a caller
learns nothing about which part was wrong or whether an order exists."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_safe

from fulfillment.status_page import (
    absolute_url,
    jsonld_script_text,
    order_status_page,
    status_jsonld,
    status_token_order_id,
)

# The token is in the address: no search engine indexes the page or follows its links, no other
# site hears the address in a Referer, no shared cache keeps a copy.
PRIVATE_HEADERS = {
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
}


def private(response: HttpResponse) -> HttpResponse:
    for name, value in PRIVATE_HEADERS.items():
        response[name] = value
    return response


def not_found() -> HttpResponse:
    """The one answer to every token that opens nothing: the same body and headers."""
    return private(HttpResponseNotFound(render_to_string("status/not_found.html")))


@require_safe
def order_status(request: HttpRequest, token: str) -> HttpResponse:
    order_id = status_token_order_id(token)
    page = order_status_page(order_id=order_id) if order_id is not None else None
    if page is None:
        return not_found()
    url = absolute_url(request.path)
    jsonld = mark_safe(jsonld_script_text(status_jsonld(page, url=url)))  # escaped for <script>
    html = render_to_string(
        "status/order_status.html", {"page": page, "jsonld": jsonld, "token": token}
    )
    return private(HttpResponse(html))
