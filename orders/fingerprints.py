"""Keyed hashes that tell values apart without keeping them (client IPs, payment cards).

Channels store ``browser_ip_hash`` in an order's ``source`` instead of the address; the fraud
score counts orders per hash (velocity) and shows only a short prefix as evidence.
"""

from __future__ import annotations

import ipaddress

from django.utils.crypto import salted_hmac


def fingerprint(kind: str, value: str) -> str:
    """A short keyed hash of ``value`` (case and surrounding space ignored)."""
    return salted_hmac(f"reviews.fraud.{kind}", value.strip().lower()).hexdigest()[:12]


def client_ip_hash(value: object) -> str:
    """The hash of a client's public IP address; "" for none, garbage, or an address that is
    not a client's own (unspecified, loopback, private: a proxy or a test order)."""
    try:
        address = ipaddress.ip_address(str(value or "").strip())
    except ValueError:
        return ""
    if not address.is_global:
        return ""
    return fingerprint("ip", str(address))
