"""Canada Post AddressComplete: is a Canadian address one Canada Post knows?

``GET {base}/Capture/Interactive/Find/v1.10/json3.ws?Key=&SearchTerm=&Country=CAN`` answers
``{"Items": [{"Id", "Type", "Text", "Highlight", "Description"}]}``. An item with ``Error``,
``Description``, ``Cause`` and ``Resolution`` is an error (HTTP 200 all the same). Items of
``Type`` "Address" are single addresses; other types ("Street", "Postcode", ...) are containers
that a Retrieve/LastId drill-down would open. We need no Retrieve: Find's ``Text`` (the street
line) and ``Description`` (city, province, postal code) are enough to decide.

- an Address item whose street line and postal code both match -> confirmed (1.00)
- an Address item whose street line matches (postal code differs or absent) -> likely (0.70)
- items, none of them our address -> unknown (0.30): Canada Post suggests other addresses
- no items -> undeliverable

The key travels in the query string (the API takes it nowhere else): the session never logs
URLs. Settings: ``CANADAPOST_API_BASE`` (default https://ws1.postescanada-canadapost.ca),
``CANADAPOST_KEY``.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Any

import structlog
from django.conf import settings

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

DEFAULT_BASE = "https://ws1.postescanada-canadapost.ca"
FIND_PATH = "/Capture/Interactive/Find/v1.10/json3.ws"
# Loqate/AddressComplete general errors worth trying again later: unknown error, daily limit,
# surge protection. The rest (unknown key, no credit, IP/URL not allowed, ...) need a person.
RETRYABLE_ERRORS = frozenset({"-1", "8", "9", "10"})
_SUFFIXES = {
    "street": "st", "avenue": "ave", "av": "ave", "road": "rd", "drive": "dr",
    "boulevard": "blvd", "boul": "blvd", "crescent": "cres", "court": "crt", "place": "pl",
    "lane": "lane", "terrace": "terr", "parkway": "pky", "highway": "hwy", "square": "sq",
    "north": "n", "south": "s", "east": "e", "west": "w",
}  # fmt: skip


def _norm(text: str) -> str:
    """Case, accents, punctuation and the usual suffix spellings do not matter."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
    words = re.sub(r"[^a-z0-9]+", " ", text).split()
    return " ".join(_SUFFIXES.get(w, w) for w in words)


def _compact(text: str) -> str:
    return _norm(text).replace(" ", "")


class CanadaPostAddressVerifier(VerifierBase):
    code = "canadapost"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        key: str | None = None,
        session: IntegrationSession | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url or settings.CANADAPOST_API_BASE or DEFAULT_BASE, session=session
        )
        self.key = key if key is not None else settings.CANADAPOST_KEY

    def verify(self, address: AddressInput) -> Verification:
        if not self.key:
            raise VerifierUnavailable("canadapost find: CANADAPOST_KEY is not set", retryable=False)
        response = self.session.call(
            "GET",
            f"{self.base_url}{FIND_PATH}",
            what="find",
            params={
                "Key": self.key,
                "SearchTerm": self.search_term(address),
                "Country": "CAN",
                "LanguagePreference": "en",
            },
            headers={"Accept": "application/json"},
        )
        body = self.session.json_of(response, what="find")
        items: list[dict[str, Any]] = (
            (body or {}).get("Items") or [] if isinstance(body, dict) else []
        )
        errors = [item for item in items if "Error" in item]
        if errors:
            code = str(errors[0].get("Error"))
            log.warning(
                "address_verifier.failed", vendor=self.code, call="find", error=code,
                description=str(errors[0].get("Description", "")),
                retryable=code in RETRYABLE_ERRORS,
            )  # fmt: skip
            # Description names the error ("Unknown key"); it never echoes the search term.
            raise VerifierUnavailable(
                f"canadapost find: error {code} ({errors[0].get('Description', '')})",
                retryable=code in RETRYABLE_ERRORS,
            )
        if not items:
            return Verification(UNDELIVERABLE, Decimal("0.00"), self.code, reason="not_found")
        return self._match(address, items)

    @staticmethod
    def search_term(address: AddressInput) -> str:
        # Canada Post writes a unit before the civic number: "100-111 Wellington St".
        street = f"{address.line2}-{address.line1}" if address.line2 else address.line1
        parts = [street, address.city, f"{address.region_code} {address.postal_code}".strip()]
        return ", ".join(p for p in parts if p)

    def _match(self, address: AddressInput, items: list[dict[str, Any]]) -> Verification:
        street = _norm(address.line1)
        unit_street = _norm(f"{address.line2}-{address.line1}") if address.line2 else street
        postal = _compact(address.postal_code)
        best: Verification | None = None
        for item in items:
            if str(item.get("Type", "")).casefold() != "address":
                continue
            text = _norm(str(item.get("Text", "")))
            if text not in (street, unit_street):
                continue
            where = _compact(f"{item.get('Text', '')} {item.get('Description', '')}")
            if postal and postal in where:
                return Verification(CONFIRMED, Decimal("1.00"), self.code, reason="exact_match")
            best = Verification(LIKELY, Decimal("0.70"), self.code, reason="street_match")
        return best or Verification(UNKNOWN, Decimal("0.30"), self.code, reason="no_exact_match")
