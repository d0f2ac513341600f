"""The read-only availability feed for the storefront (``fulfillment.availability``):
``/feeds/availability.json`` and ``/feeds/availability.jsonld`` (or ``?format=jsonld``).

Off (404) while ``AVAILABILITY_FEED_TOKEN`` is empty; otherwise ``Authorization: Bearer
<token>`` or ``?token=<token>``, else 401. Every answer is JSON."""

from __future__ import annotations

import hmac
import re

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_safe

from fulfillment.availability import as_jsonld, availability_feed

COUNTRY_RE = re.compile(r"^[A-Za-z]{2}$")
REGION_RE = re.compile(r"^[A-Za-z0-9]{1,3}$")


def _refusal(request: HttpRequest) -> JsonResponse | None:
    token = settings.AVAILABILITY_FEED_TOKEN
    if not token:
        return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    given = given or request.GET.get("token", "")
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        response = JsonResponse(
            {"code": "not_authenticated",
             "detail": "The availability feed needs its token: Authorization: Bearer <token> "
                       "or ?token=<token>."},
            status=401,
        )  # fmt: skip
        response["WWW-Authenticate"] = 'Bearer realm="availability"'
        return response
    return None


@require_safe
def availability(request: HttpRequest, fmt: str = "json") -> JsonResponse:
    """Available to sell per SKU for a destination (``?country=US``, ``?region=CA``,
    ``?sku=X``), as JSON, or as schema.org ``Offer`` JSON-LD."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    country = request.GET.get("country", "").strip().upper()
    region = request.GET.get("region", "").strip().upper()
    sku = request.GET.get("sku", "").strip()[:100]
    if country and not COUNTRY_RE.match(country):
        return JsonResponse({"code": "invalid", "detail": "country must be an ISO 3166-1 "
                             "alpha-2 code, e.g. US"}, status=400)  # fmt: skip
    if region and (not country or not REGION_RE.match(region)):
        detail = "region needs a country and is a subdivision code, e.g. country=US&region=CA"
        return JsonResponse({"code": "invalid", "detail": detail}, status=400)
    if request.GET.get("format") == "jsonld":
        fmt = "jsonld"
    feed = availability_feed(country=country, region=region, sku=sku)
    if fmt == "jsonld":
        response = JsonResponse(as_jsonld(feed), content_type="application/ld+json")
    else:
        response = JsonResponse(feed)
    response["Cache-Control"] = "private, max-age=60"
    response["X-Robots-Tag"] = "noindex"
    return response


urlpatterns = [
    path("availability.json", availability, {"fmt": "json"}, name="availability-feed"),
    path("availability.jsonld", availability, {"fmt": "jsonld"}, name="availability-feed-jsonld"),
]
