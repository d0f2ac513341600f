"""HTTP to downstream systems: one ``requests.Session`` per call, with (connect, read)
timeouts, the correlation id in ``X-Correlation-ID``, and every failure turned into a
``DownstreamError`` that says whether a later attempt may help.

There are no retries inside the session: the outbox is the retry loop (backoff with jitter, a
circuit breaker, a limit, then a person), and a POST repeated blindly inside one attempt could
create a second record. Classification: a refused connection or a connect timeout never reached
the vendor (retryable); a read timeout or a dropped answer may have been processed (retryable
and ``ambiguous``: the adapter looks for the first result before creating again); 408, 429 and
5xx are retryable; any other 4xx is not (asking again will not help, a person must look).

Nothing here logs or raises with a request or response body, a header value or a query string:
they can hold tokens and personal data. Errors name the call, the status, the host and path.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from django.utils import timezone
from urllib3.exceptions import ConnectTimeoutError

from config.http import CorrelatedSession
from fulfillment.downstream.base import DownstreamError, setting

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 15.0
USER_AGENT = "orderdesk/0.1 (+outbox)"
RETRYABLE_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))
MAX_RETRY_AFTER_SECONDS = 3600.0


class DownstreamSession(CorrelatedSession):
    """Applies the default timeout and the current correlation id to every request."""

    def __init__(self, *, target: str, timeout: tuple[float, float]) -> None:
        super().__init__(timeout=timeout, user_agent=USER_AGENT)
        self.target = target

    def call(
        self, method: str, url: str, *, what: str, accept: tuple[int, ...] = (), **kwargs: Any
    ) -> requests.Response:
        """Send one request; return a 2xx answer (or one whose status is in ``accept``),
        else raise ``DownstreamError``."""
        where = where_of(url)
        try:
            response = self.request(method, url, **kwargs)
        except requests.ConnectTimeout as exc:  # before ConnectionError: it is both
            raise self._failed(what, f"timed out connecting to {where}", True, None) from exc
        except (requests.ReadTimeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise self._failed(
                what, f"no complete answer from {where} (it may have been processed)", True,
                None, ambiguous=True,
            ) from exc  # fmt: skip
        except requests.ConnectionError as exc:
            # A refused connection never reached the vendor; a dropped one may have been
            # processed, so the adapter must look for the first result before creating again.
            reason = getattr(exc.args[0] if exc.args else None, "reason", None)
            refused = isinstance(reason, ConnectTimeoutError)  # NewConnectionError included
            detail = f"could not reach {where}" if refused else f"connection to {where} dropped"
            raise self._failed(what, detail, True, None, ambiguous=not refused) from exc
        except requests.RequestException as exc:  # invalid URL, bad schema: configuration
            raise self._failed(what, f"{type(exc).__name__} for {where}", False, None) from exc
        status = response.status_code
        if 200 <= status < 300 or status in accept:
            return response
        retry_after = _retry_after(response) if status in (429, 503) else None
        response.close()
        raise self._failed(
            what, f"HTTP {status} from {where}", status in RETRYABLE_STATUSES, status,
            retry_after=retry_after,
        )  # fmt: skip

    def _failed(
        self,
        what: str,
        detail: str,
        retryable: bool,
        status: int | None,
        *,
        ambiguous: bool = False,
        retry_after: float | None = None,
    ) -> DownstreamError:
        log.warning(
            "downstream_http.failed", target=self.target, call=what, status=status,
            retryable=retryable, ambiguous=ambiguous, detail=detail,
        )  # fmt: skip
        return DownstreamError(
            f"{what}: {detail}", retryable, status, ambiguous=ambiguous, retry_after=retry_after
        )


def where_of(url: str) -> str:
    """Host and path only: query strings carry tokens and cursors."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - timezone.now()).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER_SECONDS))


def session_for(target: str) -> DownstreamSession:
    """A new session for one downstream call (use it as a context manager).

    Timeouts come from ``DOWNSTREAM_HTTP_TIMEOUT`` ((connect, read) seconds, default (3, 15)).
    """
    connect, read = setting("DOWNSTREAM_HTTP_TIMEOUT", (CONNECT_TIMEOUT, READ_TIMEOUT))
    return DownstreamSession(target=target, timeout=(float(connect), float(read)))
