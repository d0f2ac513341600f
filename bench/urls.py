"""The product's URLs plus ``/bench/baseline/``: a bare view that inserts the raw body."""

from django.db import connection
from django.http import HttpRequest, JsonResponse
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


urlpatterns = [path("bench/baseline/", baseline), *product_urls]
