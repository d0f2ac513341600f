"""Request middleware: bind a correlation id for the request and echo it in the response."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse

from config import correlation


class CorrelationIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        cid = correlation.clean(request.headers.get(correlation.HEADER)) or correlation.new()
        request.correlation_id = cid  # type: ignore[attr-defined]
        with correlation.bound(cid), structlog.contextvars.bound_contextvars(path=request.path):
            response = self.get_response(request)
        response[correlation.HEADER] = cid
        return response
