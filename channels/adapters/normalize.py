"""What every channel normalizer shares: the quarantine-error builder and the amounts helper.

A quarantine error is ``{"pointer", "message", "value"}``. It is stored on the inbox row and
shown in the admin, so the value goes through ``orders.jsonschemas.shown_value`` for every
channel alike: redacted under a key that names personal data or a container of it (a customer,
an address, Amazon's ``BuyerInfo``), objects and lists described, emails masked. Messages say
what is wrong without quoting the value.

Paths are either a list of keys and indexes (``["line_items", 0, "price"]``) or a JSON pointer
string (``"/items/0/ItemPrice/Amount"``); both name the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.adapters.base import NormalizationError
from orders import money
from orders.errors import InvalidInput
from orders.jsonschemas import pointer, shown_value

Keys = Sequence[str | int]
Path = Keys | str

# InvalidInput codes from orders.money, in words that do not repeat the value.
_AMOUNT_REASONS = {"float_amount": "a JSON number, not a decimal string"}


# What an acquisition source may hold: a short tag or a host name, nothing a person typed in.
_SOURCE_CHARS = re.compile(r"[^a-z0-9._+-]+")


def acquisition_source(value: Any) -> str:
    """A campaign tag or site as a short lowercase token (``google``, ``otherexample.com``),
    for the return rate by acquisition source. Anything that could be personal data (an email
    in a tag, a value too long to be a tag) gives "" rather than being kept."""
    if not isinstance(value, str) or "@" in value:
        return ""
    token = _SOURCE_CHARS.sub("-", value.strip().lower()).strip("-")
    return token if 0 < len(token) <= 64 else ""


def url_host(value: Any) -> str:
    """The host of a referring URL (``www.`` dropped), never its path or query."""
    if not isinstance(value, str) or not value.strip():
        return ""
    text = value.strip()
    try:
        host = urlsplit(text if "//" in text else "//" + text).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


def url_param(value: Any, name: str) -> str:
    """One query parameter of a URL (``utm_source`` of a landing page), "" when absent."""
    if not isinstance(value, str) or "?" not in value:
        return ""
    try:
        found = parse_qs(urlsplit(value.strip()).query).get(name) or [""]
    except ValueError:
        return ""
    return found[0]


def _parts(path: Path) -> list[str | int]:
    if isinstance(path, str):
        return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    return list(path)


def _child(where: Path, key: str | int) -> Path:
    return f"{where}/{key}" if isinstance(where, str) else [*where, key]


def error_entry(path: Path, message: str, value: Any = None) -> dict[str, Any]:
    """One quarantine error, its value shown only as far as it may be stored."""
    parts = _parts(path)
    return {"pointer": pointer(parts), "message": message, "value": shown_value(parts, value)}


def error(path: Path, message: str, value: Any = None) -> NormalizationError:
    """A ``NormalizationError`` with one quarantine error."""
    return NormalizationError([error_entry(path, message, value)])


def currency(code: Any, path: Path) -> str:
    """The ISO 4217 code, or a quarantine error at ``path``."""
    try:
        return money.validate_currency(str(code or ""))
    except InvalidInput:
        raise error(path, "unknown currency code", code) from None


def external_id(value: Any, path: Path) -> str:
    if isinstance(value, bool) or value is None or str(value) == "":
        raise error(path, "missing order id", value)
    return str(value)


def list_of(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def quantity(data: Mapping[str, Any], key: str, where: Path, *, minimum: int = 1) -> int:
    """``data[key]`` as a whole number of at least ``minimum`` (JSON true is not 1)."""
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        wanted = f"a whole number of at least {minimum}" if minimum else "a whole number"
        raise error(_child(where, key), f"must be {wanted}", value)
    return value


def address(fields: Mapping[str, Any], country: Any, path: Path) -> dict[str, str] | None:
    """A canonical address from the vendor's fields mapped to ours: values trimmed, empty ones
    left out. No usable country: None, unless a street, city or postcode says there is an
    address, which is then an error at ``path`` (not something to drop)."""
    cleaned = {key: str(value).strip() for key, value in fields.items() if value}
    result = {key: value for key, value in cleaned.items() if value}
    code = str(country or "").strip().upper()
    if len(code) != 2 or not code.isalpha():
        if any(k in result for k in ("line1", "city", "postal_code")):
            raise error(path, "not an ISO 3166-1 alpha-2 code", code)
        return None
    result["country_code"] = code
    return result


class Amounts:
    """Amounts as Decimals quantized to the currency with the channel's rounding.

    A bad rounding mode is the channel's configuration, not the payload's: it is raised as
    ``InvalidInput`` (the inbox reports it on the whole order), not as an amount's error.
    """

    def __init__(self, currency: str, rounding: str) -> None:
        self.currency, self.rounding = currency, rounding

    def quantize(self, value: Decimal) -> Decimal:
        return money.quantize(value, self.currency, rounding=self.rounding)

    def zero(self) -> Decimal:
        return self.quantize(Decimal(0))

    def exact(self, value: Any, path: Path) -> Decimal:
        """The amount as given, not yet quantized (for sums and quotients)."""
        try:
            return money.to_decimal(value)
        except InvalidInput as exc:
            reason = _AMOUNT_REASONS.get(exc.code, "not a decimal")
            raise error(path, f"not an amount: {reason}", value) from None

    def parse(self, value: Any, path: Path) -> Decimal:
        return self.quantize(self.exact(value, path))

    def required(
        self, data: Mapping[str, Any], key: str, where: Path, *, default: str | None = None
    ) -> Decimal:
        """``data[key]`` as an amount; missing (or "") is an error unless there is a default."""
        value = data.get(key)
        if value is None or value == "":
            if default is None:
                raise error(_child(where, key), "missing amount", value)
            value = default
        return self.parse(value, _child(where, key))

    def optional(self, data: Mapping[str, Any], key: str, where: Path) -> Decimal:
        """``data[key]`` as an amount, 0 when absent or "" (WooCommerce's "never set")."""
        return self.required(data, key, where, default="0")
