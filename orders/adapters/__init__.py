"""Online address verifiers, one module per vendor behind ``AddressVerifier``.

``settings.ADDRESS_VERIFIER`` picks them: "" (none, offline check only), "usps", "canadapost",
or both ("usps,canadapost"). Each verifies the addresses of its own country only.
"""

from __future__ import annotations

from django.conf import settings

from config.registry import Registry, lazy
from orders.adapters.base import (
    AddressInput,
    AddressVerifier,
    Verification,
    VerifierUnavailable,
)

__all__ = [
    "AddressInput",
    "AddressVerifier",
    "Verification",
    "VerifierUnavailable",
    "configured_verifiers",
    "verifier_for",
]

COUNTRY_OF = {"usps": "US", "canadapost": "CA"}


def _unknown_verifier(name: str) -> Exception:
    return LookupError(f"No address verifier {name!r}: known are {', '.join(VERIFIERS.names())}")


VERIFIERS: Registry[str, AddressVerifier] = Registry("address verifier", missing=_unknown_verifier)
VERIFIERS.register("usps", lazy("orders.adapters.usps", "USPSAddressVerifier", call=True))
VERIFIERS.register(
    "canadapost", lazy("orders.adapters.canadapost", "CanadaPostAddressVerifier", call=True)
)


def configured_verifiers() -> list[str]:
    """The verifier codes named by ``settings.ADDRESS_VERIFIER`` (unknown names are ignored)."""
    value = settings.ADDRESS_VERIFIER or ""
    names = value.split(",") if isinstance(value, str) else list(value)
    return [n.strip().lower() for n in names if n.strip().lower() in VERIFIERS]


def verifier_for(country_code: str) -> AddressVerifier | None:
    """A new verifier for addresses in ``country_code`` (close it after use), or None."""
    for name in configured_verifiers():
        if COUNTRY_OF[name] == country_code.upper():
            return VERIFIERS.create(name)
    return None
