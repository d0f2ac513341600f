"""The one way we talk HTTP to other systems: a requests session that puts a default timeout
and the current correlation id (``X-Correlation-ID``) on every request. Each adapter family
subclasses it for its own retries and error vocabulary."""

from __future__ import annotations

from typing import Any

import requests

from config import correlation


class CorrelatedSession(requests.Session):
    """Default (connect, read) timeout and the correlation id, read per request (one session
    may serve several correlation ids)."""

    def __init__(self, *, timeout: tuple[float, float], user_agent: str) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.headers["User-Agent"] = user_agent

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        cid = correlation.get()
        if cid:
            headers = dict(kwargs.get("headers") or {})
            headers.setdefault(correlation.HEADER, cid)
            kwargs["headers"] = headers
        return super().request(method, url, *args, **kwargs)
