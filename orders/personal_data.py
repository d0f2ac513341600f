"""Personal data per role: what of an address, a phone number or a raw snapshot a person sees.

Two permissions decide, never a role's name (``orders.roles`` grants them):

- ``orders.view_contact_details`` (customer service, reviewers, data steward): street lines and
  phone numbers. Without it an address is reduced to ``ADDRESS_KEPT``: who (name, company) and where
  for tax (city, region, postal code, country). Finance works without it.
- ``orders.view_raw_payload`` (data steward only): raw payloads and audit snapshots whole.
  Without it an audit event's data has the values under ``SNAPSHOT_KEYS`` replaced by
  ``REDACTED``, and the outbox's payloads and vendor answers are not shown.

The API, the admin and every screen read through these functions, so one rule holds everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PERM_CONTACT_DETAILS = "orders.view_contact_details"
PERM_RAW_PAYLOAD = "orders.view_raw_payload"

# An address without its contact details: enough to invoice someone and to work out the tax
# (US sales tax by ZIP and city, Canadian GST/HST by province, VAT by country).
ADDRESS_KEPT = ("name", "company", "city", "region", "region_code", "postal_code", "country_code")

# Keys of an audit snapshot (OrderEvent.data) that hold an address, a street or a phone number,
# or a whole person; what is under them is shown to raw-payload viewers only.
SNAPSHOT_KEYS = frozenset({
    "shipping_address", "billing_address", "address", "shipping", "billing", "customer",
    "recipient", "line1", "line2", "address1", "address2", "address_1", "address_2", "street",
    "phone", "phone_number", "telephone", "mobile",
})  # fmt: skip
REDACTED = "[redacted]"


def _has(user: Any, perm: str) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False)
                and user.has_perm(perm))  # fmt: skip


def sees_contact_details(user: Any) -> bool:
    """May ``user`` see street lines and phone numbers? (No user: no.)"""
    return _has(user, PERM_CONTACT_DETAILS)


def sees_raw_payloads(user: Any) -> bool:
    """May ``user`` see raw payloads and audit snapshots whole? (No user: no.)"""
    return _has(user, PERM_RAW_PAYLOAD)


def address_reduced(address: Mapping[str, Any] | None) -> dict[str, Any]:
    """The address without street lines and phone: only the ``ADDRESS_KEPT`` keys it has."""
    return {key: address[key] for key in ADDRESS_KEPT if key in address} if address else {}


def address_for(user: Any, address: Mapping[str, Any] | None) -> dict[str, Any]:
    """The address as ``user`` may see it: whole, or reduced (see ``address_reduced``)."""
    if sees_contact_details(user):
        return dict(address or {})
    return address_reduced(address)


def snapshot_redacted(data: Any) -> Any:
    """``data`` (an audit event's JSON) with whatever is under ``SNAPSHOT_KEYS`` replaced by
    ``REDACTED``, at any depth; everything else as it is."""
    if isinstance(data, Mapping):
        return {key: REDACTED if str(key).lower() in SNAPSHOT_KEYS else snapshot_redacted(value)
                for key, value in data.items()}  # fmt: skip
    if isinstance(data, list):
        return [snapshot_redacted(item) for item in data]
    return data


def snapshot_for(user: Any, data: Any) -> Any:
    """An audit event's data as ``user`` may see it: whole, or redacted."""
    return data if sees_raw_payloads(user) else snapshot_redacted(data)
