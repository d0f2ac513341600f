"""What every online address verifier shares: the dataclasses in and out, the Protocol, the
error, and the verifiers' use of the integration layer (``config.integrations``).

Retry policy (a real-time check, so latency is bounded): one more try after a retryable status
or a refused connection; none after a read timeout or a dropped answer (that would double the
worst case) or a 429 (the vendor asked us to slow down; the check cannot wait). Worst case per
call: 2 x connect timeout + read timeout. Verifier queries carry the address (USPS) or the API
key (Canada Post): the layer keeps query strings out of our messages and urllib3's log lines.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, Self

import structlog
from django.conf import settings

from config import integrations

USER_AGENT = "orderdesk/0.1 (+address verifiers)"

CONFIRMED, LIKELY, UNKNOWN, UNDELIVERABLE = "confirmed", "likely", "unknown", "undeliverable"

log = structlog.get_logger(__name__)


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


class VerifierUnavailable(integrations.IntegrationError):
    """The verifier gave no answer about the address (timeout, connection, 5xx, 429, bad
    credentials). ``retryable`` says whether asking again later may help."""


class AddressVerifier(Protocol):
    code: str

    def verify(self, address: AddressInput) -> Verification: ...

    def close(self) -> None: ...


class VerifierBase:
    """What every verifier does with its session: close it, and serve as a context manager."""

    code: str
    session: integrations.IntegrationSession

    def __init__(self, *, base_url: str, session: integrations.IntegrationSession | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or verifier_session(vendor=self.code)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def verifier_session(*, vendor: str) -> integrations.IntegrationSession:
    """A session for one verifier: its timeouts, the bounded retries above, its error."""
    policy = integrations.RetryPolicy(
        retries=settings.ADDRESS_VERIFIER_RETRIES,
        backoff=settings.ADDRESS_VERIFIER_BACKOFF,
        retry_reads=False,
        retry_rate_limited=False,
        max_retry_after=0,  # within the latency budget: never sleep out a 503's Retry-After
        # The USPS token exchange (a POST) is as safe to repeat as a lookup.
        methods=integrations.IDEMPOTENT_METHODS_AND_POST,
    )
    return integrations.session(
        timeout=settings.ADDRESS_VERIFIER_TIMEOUT, user_agent=USER_AGENT, policy=policy,
        error=VerifierUnavailable, log_event="address_verifier.failed", prefix=f"{vendor} ",
        logger=log, vendor=vendor,
    )  # fmt: skip
