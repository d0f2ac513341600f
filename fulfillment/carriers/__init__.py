"""Carriers: which one answers to a code, and which of their quotes to buy.

``get_carrier("local")`` always works (the built-in carrier renders its own labels);
``get_carrier("easypost")`` needs ``EASYPOST_API_KEY``. ``cheapest_rate`` picks, among quotes
from one or more carriers, the cheapest that is at least as fast as the service level asked for.
"""

from __future__ import annotations

from collections.abc import Iterable

from config.registry import Registry, lazy
from fulfillment.carriers.base import (
    SERVICE_LEVELS,
    Carrier,
    CarrierError,
    CarrierNotConfigured,
    NoRateAvailable,
    Rate,
    label_url_is_trusted,
)

__all__ = [
    "CARRIER_CODES",
    "Carrier",
    "CarrierError",
    "CarrierNotConfigured",
    "NoRateAvailable",
    "cheapest_rate",
    "get_carrier",
    "trusted_label_url",
]


def _unknown_carrier(code: str) -> Exception:
    return CarrierNotConfigured(
        f"Unknown carrier {code!r}: known carriers are {', '.join(CARRIERS.names())}"
    )


CARRIERS: Registry[str, Carrier] = Registry("carrier", missing=_unknown_carrier)
CARRIERS.register("local", lazy("fulfillment.carriers.local", "LocalCarrier", call=True))
# Imported on use: the local carrier must work whatever EasyPost's module needs. Without
# EASYPOST_API_KEY the constructor raises CarrierNotConfigured.
CARRIERS.register("easypost", lazy("fulfillment.carriers.easypost", "EasyPostCarrier", call=True))
CARRIER_CODES = tuple(CARRIERS.names())
# The label hosts each carrier's module declares (``LABEL_HOSTS``), read without building the
# carrier: a label bought with EasyPost stays linkable when its API key is not set here.
LABEL_HOSTS: Registry[str, tuple[str, ...]] = Registry("carrier", missing=_unknown_carrier)
LABEL_HOSTS.register("local", lazy("fulfillment.carriers.local", "LABEL_HOSTS"))
LABEL_HOSTS.register("easypost", lazy("fulfillment.carriers.easypost", "LABEL_HOSTS"))


def get_carrier(code: str) -> Carrier:
    """The carrier for ``code`` (settings are read now). ``CarrierNotConfigured`` for a code
    nobody answers to, or for EasyPost without an API key."""
    return CARRIERS.create((code or "").strip().lower())


def trusted_label_url(carrier_code: str, url: str | None) -> str | None:
    """``url`` when it may be shown as a link and redirected to: https on one of the label
    hosts of the carrier that sold the label (``LABEL_HOSTS``); otherwise None (show it as
    text, never as a link: a ``javascript:`` URL or another host must not become one)."""
    code = (carrier_code or "").strip().lower()
    if not url or code not in LABEL_HOSTS:
        return None
    return url if label_url_is_trusted(url, LABEL_HOSTS.create(code)) else None


def _meets(rate: Rate, wanted: int) -> bool:
    return (
        rate.service_level in SERVICE_LEVELS and SERVICE_LEVELS.index(rate.service_level) >= wanted
    )


def cheapest_rate(rates: Iterable[Rate], service_level: str) -> Rate:
    """The cheapest rate whose level is ``service_level`` or faster (``SERVICE_LEVELS`` order).
    Ties go to fewer delivery days (unknown days last), then carrier and service name, so the
    choice never depends on the order the carrier listed its quotes in. ``NoRateAvailable`` when
    none meets the level, or when the candidates are in several currencies (not comparable)."""
    if service_level not in SERVICE_LEVELS:
        raise NoRateAvailable(
            f"Unknown service level {service_level!r}: use one of {', '.join(SERVICE_LEVELS)}"
        )
    quotes = list(rates)
    candidates = [r for r in quotes if _meets(r, SERVICE_LEVELS.index(service_level))]
    if not candidates:
        offered = sorted({f"{r.service} ({r.service_level})" for r in quotes}) or ["none"]
        raise NoRateAvailable(
            f"No rate meets service level {service_level!r}; offered: {', '.join(offered)}"
        )
    currencies = {r.currency for r in candidates}
    if len(currencies) > 1:
        raise NoRateAvailable(
            f"Rates in several currencies cannot be compared: {', '.join(sorted(currencies))}"
        )
    return min(
        candidates,
        key=lambda r: (
            r.amount,
            r.delivery_days is None,
            r.delivery_days or 0,
            r.carrier,
            r.service,
        ),
    )
