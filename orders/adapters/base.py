"""What every online address verifier shares: the dataclasses in and out, the Protocol, the
error, and a small ``requests`` session with timeouts, one bounded retry and the correlation id.

Why not ``channels.http``: ``orders`` sits below ``channels`` (no upward imports), and its
session retries through urllib3's ``Retry``, whose warnings quote the URL with its query
string. Verifier queries carry the address (USPS) or the API key (Canada Post), so this
session retries in our own loop and never logs or raises with a URL, a query or a body.

Retry policy (real-time check, so latency is bounded): one more try after a 5xx or a refused
or dropped connection; none after a read timeout (that would double the worst case) or a 429
(the vendor asked us to slow down). Worst case per call: 2 x connect timeout + read timeout.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import structlog
from django.conf import settings

from config.http import CorrelatedSession

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
RETRIES = 1
BACKOFF_SECONDS = 0.25
RETRY_STATUSES = frozenset({500, 502, 503, 504})
USER_AGENT = "orderdesk/0.1 (+address verifiers)"

CONFIRMED, LIKELY, UNKNOWN, UNDELIVERABLE = "confirmed", "likely", "unknown", "undeliverable"


@dataclass(frozen=True)
class AddressInput:
    """An address as the verifiers see it (normalized by the offline check first)."""

    line1: str
    city: str
    region_code: str
    postal_code: str
    country_code: str
    line2: str = ""
    company: str = ""

    def fingerprint(self) -> str:
        """A stable hash of the address: the cache key and the only id we log for it."""
        payload = json.dumps(
            [self.country_code, self.region_code, self.city, self.postal_code, self.line1,
             self.line2, self.company],
            ensure_ascii=False,
        )  # fmt: skip
        return hashlib.sha256(" ".join(payload.upper().split()).encode()).hexdigest()


@dataclass(frozen=True)
class Verification:
    """A verifier's answer. ``reason`` is a code (``dpv_Y``, ``not_found``), never address text."""

    deliverability: str  # confirmed | likely | unknown | undeliverable
    confidence: Decimal  # 0.00 .. 1.00
    source: str  # usps | canadapost
    reason: str = ""


class VerifierUnavailable(Exception):
    """The verifier gave no answer about the address (timeout, connection, 5xx, 429, bad
    credentials). ``retryable`` says whether asking again later may help."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class AddressVerifier(Protocol):
    code: str

    def verify(self, address: AddressInput) -> Verification: ...

    def close(self) -> None: ...


def _where(url: str) -> str:
    """Host and path only: query strings carry addresses and keys."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def configured_timeout() -> tuple[float, float]:
    connect, read = getattr(settings, "ADDRESS_VERIFIER_TIMEOUT", (CONNECT_TIMEOUT, READ_TIMEOUT))
    return float(connect), float(read)


class VerifierSession(CorrelatedSession):
    """A session with default timeouts and the current correlation id on every request."""

    def __init__(self, *, vendor: str, timeout: tuple[float, float] | None = None) -> None:
        super().__init__(timeout=timeout or configured_timeout(), user_agent=USER_AGENT)
        self.vendor = vendor
        self.retries = int(getattr(settings, "ADDRESS_VERIFIER_RETRIES", RETRIES))
        self.backoff = float(getattr(settings, "ADDRESS_VERIFIER_BACKOFF", BACKOFF_SECONDS))

    def call(
        self, method: str, url: str, *, what: str, ok: frozenset[int] = frozenset(), **kwargs: Any
    ) -> requests.Response:
        """Send a request, retrying after a 5xx or a connection failure (see the module
        docstring). Return a 2xx response, or one whose status is in ``ok``; raise
        ``VerifierUnavailable`` otherwise."""
        where = _where(url)
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.request(method, url, **kwargs)
            except requests.ConnectTimeout as exc:
                # Nothing reached the vendor: as safe to repeat as a refused connection.
                if not last:
                    self._pause(what, "connect timeout")
                    continue
                raise self._failed(what, f"timed out connecting to {where}", True) from exc
            except requests.Timeout as exc:
                raise self._failed(what, f"timed out calling {where}", True) from exc
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                if not last:
                    self._pause(what, "connection failed")
                    continue
                raise self._failed(what, f"could not reach {where}", True) from exc
            except requests.RequestException as exc:  # invalid URL, bad schema: configuration
                raise self._failed(what, f"{type(exc).__name__} for {where}", False) from exc
            status = response.status_code
            if 200 <= status < 300 or status in ok:
                return response
            response.close()
            if status in RETRY_STATUSES and not last:
                self._pause(what, f"HTTP {status}")
                continue
            retryable = status == 429 or status >= 500
            raise self._failed(what, f"HTTP {status} from {where}", retryable, status)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _pause(self, what: str, why: str) -> None:
        log.info("address_verifier.retry", vendor=self.vendor, call=what, why=why)
        time.sleep(self.backoff)

    def _failed(
        self, what: str, detail: str, retryable: bool, status: int | None = None
    ) -> VerifierUnavailable:
        log.warning(
            "address_verifier.failed",
            vendor=self.vendor,
            call=what,
            status=status,
            retryable=retryable,
            detail=detail,
        )
        return VerifierUnavailable(
            f"{self.vendor} {what}: {detail}", retryable=retryable, status=status
        )


def json_of(response: requests.Response, *, vendor: str, what: str) -> Any:
    """Parse a JSON answer; a 2xx that is not JSON is a proxy's page: unavailable."""
    try:
        return json.loads(response.content or b"null")
    except ValueError:
        raise VerifierUnavailable(
            f"{vendor} {what}: the answer from {_where(response.url)} is not JSON",
            retryable=True,
            status=response.status_code,
        ) from None
