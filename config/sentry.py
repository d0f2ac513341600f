"""Sentry, with PII kept out: no default PII, and a scrubber for names, emails, phones, addresses.

Sentry's own scrubber removes passwords and tokens but not personal data, so ``before_send``
walks the parts of the event that carry user data and redacts by key name (Sentry's denylist plus
``email``, ``first_name``, ``address1``...) and by value shape (anything that looks like an email
address, a phone number or a street address). Exception messages also lose the quoted values
that read as words (``scrub_exception_text``): the logging chain uses the same function.
"""

from __future__ import annotations

import re
from typing import Any, cast

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.scrubber import DEFAULT_DENYLIST
from sentry_sdk.types import DataCollectionUserOptions, Event, Hint

REDACTED = "[redacted]"
PII_KEYS = frozenset(
    {
        "name", "first_name", "last_name", "full_name", "firstname", "lastname", "company",
        "email", "e_mail", "email_address", "contact_email", "buyer_email", "customer_email",
        "phone", "phone_number", "telephone", "mobile",
        "address", "address1", "address2", "address_1", "address_2", "street", "street_1",
        "street_2", "line1", "line2", "addressline1", "addressline2", "addressline3",
        "shipping_address", "billing_address", "city", "zip", "postal_code", "postcode",
        "ip", "ip_address", "browser_ip", "remote_addr", "x_forwarded_for",
    }
)  # fmt: skip
# Sentry's own denylist (passwords, tokens, api keys, cookies, sessions) joins ours: with
# data_collection set, sentry-sdk no longer runs its EventScrubber, so before_send does it all.
SENSITIVE_KEYS = PII_KEYS | frozenset(k.lower().replace("-", "_") for k in DEFAULT_DENYLIST)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Phone-number candidates: digits with the usual separators; _phone() keeps only 9-15 digits
# that are not a date, so timestamps and ids survive.
_PHONE = re.compile(r"(?<![\w.:])\+?\(?\d[\d\s().-]{7,}\d(?![\w.:])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_AMOUNT = re.compile(r"\d+\.\d{2,4}")  # 10000.0000: an amount, not a phone
# A street address in running text: a house number, up to four capitalised words and a street
# type ("742 Evergreen Terrace", "1 Main St"). Addresses in other shapes are caught when quoted.
_STREET = re.compile(
    r"\b\d{1,6}[A-Za-z]?(?:[ \t]+[A-Z][\w'.-]*){1,4}[ \t]+(?:Street|St|Avenue|Ave|Road|Rd|"
    r"Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Terrace|Ter|Place|Pl|Square|Sq|Parkway|Pkwy|"
    r"Highway|Hwy|Circle|Cir|Close|Crescent|Row|Alley|Walk)\b\.?"
)
# Exception messages quote the values they choke on (``Not an amount: '742 Evergreen'``,
# ``{'name': 'Jane Doe'}``). A quoted value is kept only when it reads as a key, code or number
# (``'country_code'``, ``'USD'``, ``'IPOD2008GREEN'``, ``'12.50'``), never as words.
_QUOTED = re.compile(r"'([^'\n]{1,300})'|\"([^\"\n]{1,300})\"")
_PLAIN_QUOTED = re.compile(r"[a-z0-9_./:#+-]*|[A-Z0-9_./:#+-]*")
# The parts of an event that can carry user data; the rest (sdk, os, runtime) is left alone.
_FREE_TEXT_PARTS = ("request", "extra", "breadcrumbs", "logentry", "message", "exception", "tags")


def _norm(key: str) -> str:
    return key.lower().replace("-", "_").replace(" ", "_")


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if 9 <= digits <= 15 and not _DATE.search(text) and not _AMOUNT.fullmatch(text):
        return REDACTED
    return text


def _is_id_key(key: object) -> bool:
    """``order_id``, ``external_id``, ``ids``...: long digit runs there are ids, not phones."""
    return isinstance(key, str) and _norm(key).rstrip("s").endswith("id")


def _quoted(match: re.Match[str]) -> str:
    inner = match.group(1) if match.group(1) is not None else match.group(2)
    if _PLAIN_QUOTED.fullmatch(inner) or REDACTED in inner:
        return match.group(0)
    quote = match.group(0)[0]
    return f"{quote}{REDACTED}{quote}"


def scrub_exception_text(text: str) -> str:
    """An exception's message with emails, phones, streets and quoted values that read as
    words redacted: what a payload's value can bring into ``str(exc)``."""
    text = _STREET.sub(REDACTED, _PHONE.sub(_phone, _EMAIL.sub(REDACTED, text)))
    return _QUOTED.sub(_quoted, text)


def scrub_value(value: Any, *, phones: bool = True) -> Any:
    if isinstance(value, str):
        value = _STREET.sub(REDACTED, _EMAIL.sub(REDACTED, value))
        return _PHONE.sub(_phone, value) if phones else value
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if isinstance(k, str) and _norm(k) in SENSITIVE_KEYS
                else scrub_value(v, phones=not _is_id_key(k))
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_value(v, phones=phones) for v in value]
    return value


def before_send(event: Event, hint: Hint) -> Event:
    """Redact PII in every part of an event that can carry user data (frames' vars included)."""
    # Event is a TypedDict; the parts are walked by name, so handle it as the dict it is.
    parts = cast(dict[str, Any], event)
    parts.pop("user", None)
    for part in _FREE_TEXT_PARTS:
        if part in parts:
            parts[part] = scrub_value(parts[part])
    for exception in (parts.get("exception") or {}).get("values") or []:
        if isinstance(exception.get("value"), str):
            exception["value"] = scrub_exception_text(exception["value"])
    return event


# Integrations collect no user identity, cookies or request bodies (sentry-sdk's successor of
# send_default_pii=False); before_send removes what slips through elsewhere.
DATA_COLLECTION: DataCollectionUserOptions = {
    "user_info": False,
    "cookies": {"mode": "off"},
    "http_bodies": [],
}


def init_sentry(
    *, dsn: str, environment: str, traces_sample_rate: float, transport: Any = None
) -> None:
    """Start Sentry for this process; ``transport`` replaces the HTTP one (tests)."""
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        data_collection=DATA_COLLECTION,
        transport=transport,
        traces_sample_rate=traces_sample_rate,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        before_send=before_send,
        before_send_transaction=before_send,
    )
