"""HTTP to channel APIs: one ``requests.Session`` per use, with retries, timeouts and the
correlation id, and every failure turned into an ``AdapterError`` that says whether to retry.

Retries happen inside the session (urllib3 ``Retry``): 429 and 5xx answers, refused or dropped
connections and read timeouts are tried again up to four times with exponential backoff, and a
``Retry-After`` header is honoured (capped, so a channel cannot park a worker for an hour). What
is still failing after that comes back as ``AdapterError(retryable=True)``, and the inbox tries
the event again later; a 4xx other than 408/429 is ``retryable=False`` (asking again will not
help, a person must look).

Nothing here logs or raises with a request or response body or a header value: they can hold
tokens and personal data. Our errors and log lines name the call, the status, the host and path
(no query string). urllib3's own "Retrying ..." warnings do show path and query, so credentials
must travel in headers or bodies, never in the URL (ours do: X-Auth-Token, x-amz-access-token,
the LWA form).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util import Retry

from channels.adapters.base import AdapterError, ChannelConfig
from config.http import CorrelatedSession

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 15.0
RETRY_TOTAL = 4
BACKOFF_FACTOR = 0.5  # sleeps 0, 1, 2, 4 s between the five attempts
RETRY_STATUSES = (429, 500, 502, 503, 504)
RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
# Idempotent methods plus POST: our only POST today is the LWA token exchange, which is safe
# to repeat. A future POST that creates something must send the vendor an idempotency key.
RETRY_METHODS = Retry.DEFAULT_ALLOWED_METHODS | {"POST"}
MAX_RETRY_AFTER_SECONDS = 20.0
USER_AGENT = "orderdesk/0.1 (+channel adapters)"


class ChannelHTTPError(AdapterError):
    """An ``AdapterError`` from HTTP; ``status`` is None when no answer came at all."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status


class _CappedRetry(Retry):
    """``Retry`` that sleeps at most ``MAX_RETRY_AFTER_SECONDS`` for a ``Retry-After``."""

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, MAX_RETRY_AFTER_SECONDS)


class ChannelSession(CorrelatedSession):
    """A session that applies the default timeout and the current correlation id to every
    request (read per request: one session may serve several correlation ids)."""

    def __init__(self, *, channel_id: int, timeout: tuple[float, float]) -> None:
        super().__init__(timeout=timeout, user_agent=USER_AGENT)
        self.channel_id = channel_id

    def call(self, method: str, url: str, *, what: str, **kwargs: Any) -> requests.Response:
        """Send a request; return a 2xx response or raise ``ChannelHTTPError``."""
        where = _where(url)
        try:
            response = self.request(method, url, **kwargs)
        except requests.Timeout as exc:
            raise self._failed(what, f"timed out calling {where}", True, None) from exc
        except (
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,  # the connection dropped mid-answer
            requests.exceptions.RetryError,
        ) as exc:
            # Read timeouts that outlast the retries arrive as a ConnectionError.
            reason = getattr(exc.args[0] if exc.args else None, "reason", None)
            detail = (
                "timed out calling" if isinstance(reason, ReadTimeoutError) else "could not reach"
            )
            raise self._failed(what, f"{detail} {where}", True, None) from exc
        except requests.RequestException as exc:  # invalid URL, bad schema: configuration
            raise self._failed(what, f"{type(exc).__name__} for {where}", False, None) from exc
        status = response.status_code
        if 200 <= status < 300:
            return response
        response.close()
        raise self._failed(
            what, f"HTTP {status} from {where}", status in RETRYABLE_STATUSES, status
        )

    def get_json(self, url: str, *, what: str, **kwargs: Any) -> Any:
        """GET and parse JSON; ``None`` for 204 No Content."""
        return self.json_of(self.call("GET", url, what=what, **kwargs), what=what)

    def json_of(self, response: requests.Response, *, what: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            # Plain json: amounts stay the strings the channel sent (to_decimal refuses floats).
            return json.loads(response.content)
        except ValueError:
            # A 2xx that is not JSON is a proxy's or maintenance page: likely to pass.
            raise self._failed(
                what, f"the answer from {_where(response.url)} is not JSON", True, None
            ) from None

    def _failed(
        self, what: str, detail: str, retryable: bool, status: int | None
    ) -> ChannelHTTPError:
        log.warning(
            "channel_http.failed",
            channel_id=self.channel_id,
            call=what,
            status=status,
            retryable=retryable,
            detail=detail,
        )
        return ChannelHTTPError(f"{what}: {detail}", retryable=retryable, status=status)


def _where(url: str) -> str:
    """Host and path only: query strings carry tokens and cursors."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def retry_policy(*, backoff_factor: float | None = None) -> Retry:
    if backoff_factor is None:
        # Tests set CHANNEL_HTTP_BACKOFF_FACTOR = 0 so retries do not wait.
        backoff_factor = float(getattr(settings, "CHANNEL_HTTP_BACKOFF_FACTOR", BACKOFF_FACTOR))
    return _CappedRetry(
        total=RETRY_TOTAL,
        backoff_factor=backoff_factor,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=RETRY_METHODS,
        respect_retry_after_header=True,
        # After the last retry, hand back the failing response (we map its status) instead
        # of raising urllib3's MaxRetryError, whose message quotes the query string.
        raise_on_status=False,
    )


def session_for(
    channel: ChannelConfig,
    *,
    backoff_factor: float | None = None,
    timeout: tuple[float, float] | None = None,
) -> ChannelSession:
    """A new session for calls to ``channel``'s API (close it, or use it as a context manager)."""
    if timeout is None:
        connect, read = getattr(settings, "CHANNEL_HTTP_TIMEOUT", (CONNECT_TIMEOUT, READ_TIMEOUT))
        timeout = (float(connect), float(read))
    session = ChannelSession(channel_id=channel.id, timeout=timeout)
    adapter = HTTPAdapter(max_retries=retry_policy(backoff_factor=backoff_factor))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
