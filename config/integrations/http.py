"""The session factory and the one ``call()``: how we talk HTTP to every other system.

``session(...)`` makes a ``requests`` session with (connect, read) timeouts, our User-Agent, the
current correlation id in ``X-Correlation-ID`` (read per request: one session may serve several
ids) and urllib3's ``Retry`` with ONE classification of what is worth another try: a connection
error, 408, 425, 429 and 5xx (``RETRYABLE_STATUSES``). A ``Retry-After`` is honoured up to the
policy's cap. How many of those retries happen inside the session is the caller's choice
(``RetryPolicy``): channels retry inside, the outbox is its own retry loop (0 here), the address
verifiers are a real-time check with a bounded latency budget.

``IntegrationSession.call()`` maps every failure to the family's ``IntegrationError`` subclass:
a refused connection or a connect timeout never reached the vendor (retryable); a read timeout
or a dropped answer may have been processed (retryable and ``ambiguous``); a retryable status
after the session's own retries is retryable; any other 4xx is not (a person must look); an
invalid URL or schema is configuration (not retryable).

Every session is guarded (``config.integrations.urlguard``): each request and redirect hop is
checked (https only, no loopback, private, link-local or metadata address unless allowed, the
address checked on the connection itself, no redirect to another host); a refusal is
``URLRefused``, raised by ``call()`` as the family's error class too, never retryable.

Errors and our log lines name the call with ``where(url)`` (host and path): never a query
string, a body or a header value, which carry tokens, keys and addresses. urllib3's own log
lines are cleaned by ``config.integrations.logfilter``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from requests.utils import select_proxy
from urllib3.exceptions import InvalidHeader, MaxRetryError, ProtocolError, ReadTimeoutError
from urllib3.util import Retry

from config import correlation
from config.integrations import logfilter, urlguard
from config.integrations.errors import IntegrationError, URLRefused

log = structlog.get_logger(__name__)

# The one classification: what may succeed if asked again.
RETRYABLE_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))
# The most a vendor's Retry-After may hold an action back (reported on the error, for the outbox).
MAX_REPORTED_RETRY_AFTER = 3600.0
# Methods a session may repeat after an answer: the idempotent ones, plus POST for the families
# whose POSTs are lookups or token exchanges (safe to repeat).
IDEMPOTENT_METHODS = frozenset(Retry.DEFAULT_ALLOWED_METHODS)
IDEMPOTENT_METHODS_AND_POST = IDEMPOTENT_METHODS | {"POST"}
# Any status: for adapters that read the vendor's refusal themselves (``accept=ANY_STATUS``).
ANY_STATUS = frozenset(range(100, 600))

logfilter.install()


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES


def where(url: str) -> str:
    """How messages and logs name a call: host and path only (no query, no credentials)."""
    parts = urlsplit(url)
    return f"{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


@dataclass(frozen=True)
class RetryPolicy:
    """How many of the retryable failures are tried again inside one session.

    ``retries``: retries after a failure that is safe to repeat (0: one attempt).
    ``retry_reads``: also after a read timeout or a dropped answer (the request may have been
    processed, and it costs a whole read timeout again). ``retry_rate_limited``: also after a
    429 (a real-time check cannot wait for the vendor to cool down). ``methods``: which methods
    are repeated after an answer (connect failures are repeated for every method: nothing was
    sent). ``max_retry_after``: the longest ``Retry-After`` slept inside the session.
    """

    retries: int = 0
    backoff: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.0
    retry_reads: bool = True
    retry_rate_limited: bool = True
    methods: frozenset[str] = IDEMPOTENT_METHODS
    max_retry_after: float = 20.0

    def urllib3_retry(self) -> Retry:
        statuses = RETRYABLE_STATUSES if self.retry_rate_limited else RETRYABLE_STATUSES - {429}
        return _Retry(
            total=self.retries,
            read=None if self.retry_reads else 0,
            redirect=False,  # requests follows redirects itself
            status_forcelist=statuses,
            allowed_methods=self.methods,
            backoff_factor=self.backoff,
            backoff_max=self.backoff_max,
            backoff_jitter=self.jitter,
            respect_retry_after_header=True,
            retry_after_max=int(self.max_retry_after),
            # After the last retry, hand back the failing answer (we map its status) instead of
            # raising urllib3's MaxRetryError, whose message quotes the query string.
            raise_on_status=False,
        )


class _Retry(Retry):
    """urllib3's ``Retry`` with our classification only (no retry of a 413 because it carries
    ``Retry-After``) and a malformed ``Retry-After`` read as absent."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        return self._is_method_retryable(method) and status_code in (self.status_forcelist or ())

    def parse_retry_after(self, retry_after: str) -> float:
        try:
            return super().parse_retry_after(retry_after)
        except InvalidHeader:
            return 0.0


def retry_after_of(response: requests.Response) -> float | None:
    """The seconds a 429/503 asks us to wait (capped), or None."""
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = Retry(retry_after_max=int(MAX_REPORTED_RETRY_AFTER)).parse_retry_after(value)
    except InvalidHeader:
        return None
    return float(seconds)


ErrorFactory = Callable[..., IntegrationError]


class IntegrationSession(requests.Session):
    """One use's session: its timeouts, retries, error type and log vocabulary.

    ``error`` is called as ``error(message, retryable=, status=, ambiguous=, retry_after=)``;
    ``prefix`` starts every message (``"usps "``); ``log_event`` and ``log_context`` name the
    failure in our logs (``"channel_http.failed"``, ``channel_id=7``), written to ``logger``
    (the adapter's own, so a failure is filed under the module that made the call).
    """

    def __init__(
        self,
        *,
        timeout: tuple[float, float],
        user_agent: str,
        policy: RetryPolicy,
        error: ErrorFactory,
        log_event: str,
        prefix: str = "",
        logger: Any = None,
        **log_context: object,
    ) -> None:
        super().__init__()
        self.log = logger if logger is not None else log
        self.default_timeout = (float(timeout[0]), float(timeout[1]))
        self.policy = policy
        self.error = error
        self.log_event = log_event
        self.prefix = prefix
        self.log_context = log_context
        self.headers["User-Agent"] = user_agent
        # Every connection through the guard (``urlguard``): only checked addresses.
        adapter = urlguard.GuardedAdapter(max_retries=policy.urllib3_retry())
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        cid = correlation.get()
        if cid:
            headers = dict(kwargs.get("headers") or {})
            headers.setdefault(correlation.HEADER, cid)
            kwargs["headers"] = headers
        return super().request(method, url, *args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Every request and every redirect hop passes the guard: the URL's scheme and host
        here, the addresses connected to in ``urlguard.GuardedAdapter`` (through a proxy, which
        connects for us, the target's addresses here)."""
        url = request.url or ""
        problem = urlguard.url_syntax_problem(url)
        if problem:
            raise _refusal(url, problem)
        try:
            if select_proxy(url, kwargs.get("proxies") or {}):
                _check_through_proxy(url)
            return super().send(request, **kwargs)
        except URLRefused as exc:
            if exc.place:  # a redirect hop's, already named
                raise
            raise _refusal(url, str(exc)) from None

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        """Called for each redirect hop before it is sent: a hop to another origin is refused
        (requests would strip only ``Authorization`` and carry every other credential header)."""
        target = prepared_request.url or ""
        if urlguard.origin(target) != urlguard.origin(response.url):
            response.close()
            raise _refusal(response.url, f"redirect to another host refused: {where(target)}")
        super().rebuild_auth(prepared_request, response)

    def resolve_redirects(
        self, resp: requests.Response, req: requests.PreparedRequest, *args: Any,
        yield_requests: bool = False, **kwargs: Any,
    ) -> Iterator[Any]:  # fmt: skip
        """With ``allow_redirects=False`` requests still prepares the next hop for
        ``Response.next``; our sessions leave it unset (it would meet the redirect refusal for
        a hop nobody follows)."""
        if yield_requests:
            return iter(())
        return super().resolve_redirects(resp, req, *args, **kwargs)

    def call(
        self, method: str, url: str, *, what: str, accept: Collection[int] = (), **kwargs: Any
    ) -> requests.Response:
        """Send a request (with the policy's retries); return a 2xx answer, or one whose status
        is in ``accept``; raise the family's error otherwise."""
        try:
            response = self.request(method, url, **kwargs)
        except URLRefused as exc:
            raise self.guard_refusal(what, str(exc)) from None
        except requests.RequestException as exc:
            detail, retryable, ambiguous = _transport_failure(exc, where(url))
            # Not chained: requests' and urllib3's messages quote the URL with its query, and
            # a chained cause would carry it into Sentry; ``detail`` says what happened.
            raise self.failed(what, detail, retryable=retryable, ambiguous=ambiguous) from None
        status = response.status_code
        if 200 <= status < 300 or status in accept:
            return response
        raise self.refusal(response, what=what)

    def get_json(self, url: str, *, what: str, **kwargs: Any) -> Any:
        """GET and parse JSON; ``None`` for 204 No Content."""
        return self.json_of(self.call("GET", url, what=what, **kwargs), what=what)

    def json_of(
        self,
        response: requests.Response,
        *,
        what: str,
        parse_float: Callable[[str], Any] | None = None,
    ) -> Any:
        """The answer's JSON (``None`` when empty). Plain ``json``: amounts stay the strings the
        vendor sent, or ``Decimal`` with ``parse_float=Decimal``; never a float by accident."""
        if response.status_code == 204 or not response.content:
            return None
        try:
            return json.loads(response.content, parse_float=parse_float)
        except ValueError:
            # A 2xx that is not JSON is a proxy's or maintenance page: likely to pass.
            raise self.failed(
                what,
                f"the answer from {where(response.url)} is not JSON",
                retryable=True,
                status=response.status_code,
            ) from None

    def refusal(
        self, response: requests.Response, *, what: str, message: str = "", **extra: Any
    ) -> IntegrationError:
        """The error for a non-2xx answer, classified once. ``message`` (the vendor's own text,
        which may quote personal data) goes into the error only, never into the log."""
        status = response.status_code
        retry_after = retry_after_of(response)
        response.close()
        detail = f"HTTP {status} from {where(response.url)}"
        return self.failed(
            what, detail, retryable=is_retryable_status(status), status=status,
            retry_after=retry_after, message=message, **extra,
        )  # fmt: skip

    def guard_refusal(self, what: str, detail: str) -> IntegrationError:
        """The family's error for a call the guard refused: also a ``URLRefused``, never
        retryable (a configuration problem for a person)."""
        self.log.warning(
            self.log_event, call=what, status=None, retryable=False, refused=True, detail=detail,
            **self.log_context,
        )  # fmt: skip
        return _refusal_type(self.error)(f"{self.prefix}{what}: {detail}", retryable=False)

    def failed(
        self,
        what: str,
        detail: str,
        *,
        retryable: bool,
        status: int | None = None,
        ambiguous: bool = False,
        retry_after: float | None = None,
        message: str = "",
        **extra: Any,
    ) -> IntegrationError:
        """Log the failure (ids, status, host and path) and return the family's error."""
        self.log.warning(
            self.log_event, call=what, status=status, retryable=retryable, ambiguous=ambiguous,
            detail=detail, **self.log_context, **extra,
        )  # fmt: skip
        return self.error(
            f"{self.prefix}{what}: {message or detail}", retryable=retryable, status=status,
            ambiguous=ambiguous, retry_after=retry_after, **extra,
        )  # fmt: skip


def _refusal(url: str, reason: str) -> URLRefused:
    error = URLRefused(f"{where(url)}: {reason}")
    error.place = where(url)
    return error


def _check_through_proxy(url: str) -> None:
    """A proxy resolves and connects for us: check what the target resolves to here (a name
    that does not resolve here is the proxy's to resolve)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        urlguard.checked_addresses(parts.hostname or "", port)
    except OSError:
        pass


@cache
def _refusal_type(error: ErrorFactory) -> ErrorFactory:
    """``error``'s class made a ``URLRefused`` too, so the family's handlers still catch it;
    a factory that is not a class gets ``URLRefused`` itself."""
    if not isinstance(error, type) or not issubclass(error, IntegrationError):
        return URLRefused
    if issubclass(error, URLRefused):
        return error
    return type(error.__name__, (error, URLRefused), {
        "__module__": error.__module__, "__qualname__": error.__qualname__,
        "__doc__": f"{error.__name__} for a URL the guard refused.",
    })  # fmt: skip


def _transport_failure(exc: requests.RequestException, place: str) -> tuple[str, bool, bool]:
    """(detail, retryable, ambiguous) for a request that got no usable answer."""
    reason: Any = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):  # the session's retries ran out: why, the last time
        reason = reason.reason
    if isinstance(exc, requests.ConnectTimeout):  # before ConnectionError: it is both
        return f"timed out connecting to {place}", True, False
    if isinstance(exc, requests.ReadTimeout) or isinstance(reason, ReadTimeoutError):
        return f"timed out waiting for {place} (it may have been processed)", True, True
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or isinstance(
        reason, ProtocolError
    ):
        return f"connection to {place} dropped (it may have been processed)", True, True
    if isinstance(exc, requests.exceptions.RetryError):
        return f"retries ran out calling {place}", True, False
    if isinstance(exc, requests.ConnectionError):  # refused, DNS, TLS: nothing was sent
        return f"could not reach {place}", True, False
    # An invalid URL or schema: configuration, asking again will not help.
    return f"{type(exc).__name__} for {place}", False, False


# The factory: ``integrations.session(timeout=..., policy=..., error=..., ...)``, one per use.
session = IntegrationSession
