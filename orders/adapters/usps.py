"""USPS Addresses API v3: is a US address a delivery point?

``GET {base}/addresses/v3/address`` with an OAuth2 client-credentials token from
``POST {base}/oauth2/v3/token``. Shapes follow USPS's published OpenAPI (addresses 3.0.x):

- 200 ``{"firm", "address": {"streetAddress", "city", "state", "ZIPCode", "ZIPPlus4"},
  "additionalInfo": {"DPVConfirmation": "Y|D|S|N", ...}, "corrections": [...], "matches": [...]}``
- 400 / 404 ``{"apiVersion", "error": {"code", "message", "errors": [...]}}``: the address is
  not there ("There is no match for the address requested", "... invalid delivery address",
  "... insufficient to match", "The city in the request is missing or invalid") or is
  ambiguous ("More than one address was found ...").

DPVConfirmation: Y (primary and secondary confirmed) -> confirmed; D (secondary missing) or S
(secondary not confirmed) -> likely; N -> undeliverable.

Settings: ``USPS_API_BASE`` (default https://apis.usps.com), ``USPS_CLIENT_ID``,
``USPS_CLIENT_SECRET``. The token is cached (Django cache) until shortly before it expires.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from typing import Any

import requests
import structlog
from django.conf import settings
from django.core.cache import cache

from config.integrations import IntegrationSession
from orders.adapters.base import (
    CONFIRMED,
    LIKELY,
    UNDELIVERABLE,
    UNKNOWN,
    AddressInput,
    Verification,
    VerifierBase,
    VerifierUnavailable,
)

log = structlog.get_logger(__name__)

DEFAULT_BASE = "https://apis.usps.com"
TOKEN_SAFETY_SECONDS = 60  # renew a minute early: a token must not expire mid-request
DPV = {
    "Y": (CONFIRMED, Decimal("1.00")),
    "D": (LIKELY, Decimal("0.70")),
    "S": (LIKELY, Decimal("0.70")),
    "N": (UNDELIVERABLE, Decimal("0.00")),
}
_ZIP = re.compile(r"^(\d{5})(?:[- ]?(\d{4}))?$")


class USPSAddressVerifier(VerifierBase):
    code = "usps"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        session: IntegrationSession | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url or settings.USPS_API_BASE or DEFAULT_BASE, session=session
        )
        self.client_id = client_id if client_id is not None else settings.USPS_CLIENT_ID
        self.client_secret = (
            client_secret if client_secret is not None else settings.USPS_CLIENT_SECRET
        )

    # -- the address -------------------------------------------------------------------------

    def verify(self, address: AddressInput) -> Verification:
        response = self._get_address(address, self._token())
        if response.status_code == 401:
            # Revoked or expired early: one fresh token, then give up as a configuration error.
            cache.delete(self._token_cache_key())
            response = self._get_address(address, self._token())
            if response.status_code == 401:
                raise VerifierUnavailable(
                    "usps address: the token was refused (HTTP 401)", retryable=False, status=401
                )
        body = self.session.json_of(response, what="address")
        if response.status_code in (400, 404):
            return self._not_found(response.status_code, body)
        info = (body or {}).get("additionalInfo") or {}
        dpv = str(info.get("DPVConfirmation") or "").upper()
        if dpv not in DPV:
            # Standardized, but USPS did not say whether it delivers there.
            return Verification(UNKNOWN, Decimal("0.50"), self.code, reason="dpv_missing")
        deliverability, confidence = DPV[dpv]
        return Verification(deliverability, confidence, self.code, reason=f"dpv_{dpv}")

    def _get_address(self, address: AddressInput, token: str) -> requests.Response:
        zip_match = _ZIP.match(address.postal_code.strip())
        params = {
            "streetAddress": address.line1,
            "secondaryAddress": address.line2 or None,
            "city": address.city or None,
            "state": address.region_code,
            "ZIPCode": zip_match.group(1) if zip_match else None,
            "ZIPPlus4": zip_match.group(2) if zip_match and zip_match.group(2) else None,
        }
        return self.session.call(
            "GET",
            f"{self.base_url}/addresses/v3/address",
            what="address",
            accept=(400, 401, 404),
            params={k: v for k, v in params.items() if v},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    def _not_found(self, status: int, body: Any) -> Verification:
        error = (body or {}).get("error") if isinstance(body, dict) else None
        message = str((error or {}).get("message") or "").lower()
        if "more than one address" in message:
            # Ambiguous: the street exists, the unit (usually) is missing.
            return Verification(LIKELY, Decimal("0.50"), self.code, reason="multiple_matches")
        if status == 400 and not message:
            # A 400 without USPS's error body is our request's fault, not the address's.
            raise VerifierUnavailable(
                "usps address: HTTP 400 without an error body", retryable=False, status=400
            )
        reason = "not_found" if status == 404 else "invalid_address"
        return Verification(UNDELIVERABLE, Decimal("0.00"), self.code, reason=reason)

    # -- the token ---------------------------------------------------------------------------

    def _token_cache_key(self) -> str:
        ident = hashlib.sha256(f"{self.base_url}|{self.client_id}".encode()).hexdigest()[:16]
        return f"address:usps:token:{ident}"

    def _token(self) -> str:
        key = self._token_cache_key()
        token = cache.get(key)
        if token:
            return str(token)
        if not self.client_id or not self.client_secret:
            raise VerifierUnavailable(
                "usps token: USPS_CLIENT_ID / USPS_CLIENT_SECRET are not set", retryable=False
            )
        response = self.session.call(
            "POST",
            f"{self.base_url}/oauth2/v3/token",
            what="token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
            headers={"Accept": "application/json"},
        )
        body = self.session.json_of(response, what="token")
        token = (body or {}).get("access_token") if isinstance(body, dict) else None
        if not token:
            raise VerifierUnavailable("usps token: no access_token in the answer", retryable=True)
        try:
            expires_in = int(body.get("expires_in") or 0)
        except (TypeError, ValueError):
            expires_in = 0
        cache.set(key, token, timeout=max(expires_in - TOKEN_SAFETY_SECONDS, 30))
        log.info("address_verifier.token", vendor=self.code, expires_in=expires_in)
        return str(token)
