"""The product's URLs plus ``/bench/baseline/``: a bare view that inserts the raw body, and
``/bench/constant/``: a bare view that answers a constant (the status page bench's baseline)."""

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as product_urls


@csrf_exempt
def baseline(request: HttpRequest) -> JsonResponse:
    """The least a webhook endpoint can do: one INSERT of the body, then answer."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_raw (body) VALUES (%s) RETURNING id", [request.body])
        (row_id,) = cursor.fetchone()
    return JsonResponse({"accepted": True, "id": row_id}, status=202)


def constant(request: HttpRequest) -> HttpResponse:
    """The least any page costs: the middleware stack and a response, no query, no template."""
    return HttpResponse("ok")


urlpatterns = [path("bench/baseline/", baseline), path("bench/constant/", constant),
               *product_urls]  # fmt: skip
