"""Money: ``Decimal`` quantized to each currency's ISO 4217 minor units, with an explicit rounding.

No floats anywhere: ``to_decimal`` refuses them. ``allocate`` splits an amount (an order-level
discount, tax or shipping) across lines in proportion to weights so that the parts, each in whole
minor units, always sum exactly to the amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

from babel.numbers import get_currency_precision, list_currencies

from orders.errors import InvalidInput

__all__ = [
    "ROUND_HALF_EVEN",
    "ROUND_HALF_UP",
    "ROUNDING_MODES",
    "allocate",
    "minor_units",
    "normalize",
    "quantize",
    "to_decimal",
    "validate_currency",
]

# The rounding rules a channel may use (the names are the decimal module's constants).
ROUNDING_MODES = ("ROUND_HALF_UP", "ROUND_HALF_EVEN", "ROUND_DOWN", "ROUND_UP", "ROUND_HALF_DOWN")


@cache
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def validate_currency(currency: str) -> str:
    """Return the ISO 4217 code upper-cased, or raise InvalidInput for an unknown code."""
    code = (currency or "").upper()
    if code not in _known_currencies():
        raise InvalidInput(f"Unknown currency code {currency!r}", code="unknown_currency")
    return code


@cache
def minor_units(currency: str) -> int:
    """Decimal places of the currency's minor unit: JPY 0, USD 2, KWD 3 (ISO 4217, via babel)."""
    return int(get_currency_precision(validate_currency(currency)))


def _exponent(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def to_decimal(value: object) -> Decimal:
    """Parse an amount from a string, int or Decimal. Floats are refused: they are not money."""
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidInput(f"Amounts must not be floats: {value!r}", code="float_amount")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise InvalidInput(f"Not an amount: {value!r}", code="invalid_amount") from None
    else:
        raise InvalidInput(f"Not an amount: {value!r}", code="invalid_amount")
    if not result.is_finite():
        raise InvalidInput(f"Not a finite amount: {value!r}", code="invalid_amount")
    return result


def quantize(amount: Decimal | int | str, currency: str, *, rounding: str) -> Decimal:
    """Round ``amount`` to the currency's minor units with the given rounding mode."""
    if rounding not in ROUNDING_MODES:
        raise InvalidInput(f"Unknown rounding mode {rounding!r}", code="invalid_rounding")
    return to_decimal(amount).quantize(_exponent(currency), rounding=rounding)


def normalize(amount: Decimal, currency: str) -> Decimal:
    """Show a stored amount (kept with 4 decimals for every currency) in the currency's units.

    Stored amounts were quantized on the way in, so this only drops trailing zeros beyond the
    minor unit (``26.5000`` USD -> ``26.50``); it never rounds a real fraction away silently.
    """
    exp = _exponent(currency)
    result = amount.quantize(exp)
    if result != amount:
        return amount  # not a whole minor unit: show it as it is rather than hide the fraction
    return result


def allocate(total: Decimal, weights: Sequence[Decimal | int], currency: str) -> list[Decimal]:
    """Split ``total`` across ``weights`` in whole minor units; the parts sum exactly to it.

    ``total`` must already be quantized to the currency. Each exact share is first truncated to
    minor units, then the units left over go one each to the shares with the largest remainders
    (ties: the larger weight, then the earlier line), so every part is within one minor unit of
    its exact proportional share and the result does not depend on a rounding mode. With all
    weights zero, the amount is split as evenly as possible. A negative total (a refund) gives
    negative parts.
    """
    if not weights:
        raise InvalidInput("Cannot allocate across no lines", code="empty_allocation")
    exp = _exponent(currency)
    total = to_decimal(total)
    if total != total.quantize(exp):
        raise InvalidInput(
            f"{total} has more decimals than {currency} allows", code="unquantized_amount"
        )
    ws = [to_decimal(w) for w in weights]
    if any(w < 0 for w in ws):
        raise InvalidInput("Allocation weights must not be negative", code="negative_weight")
    weight_sum = sum(ws, Decimal(0))
    if weight_sum == 0:
        ws = [Decimal(1)] * len(ws)
        weight_sum = Decimal(len(ws))

    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    exact = [magnitude * w / weight_sum for w in ws]
    parts = [e.quantize(exp, rounding=ROUND_DOWN) for e in exact]
    leftover_units = int((magnitude - sum(parts, Decimal(0))) / exp)
    order = sorted(range(len(ws)), key=lambda i: (-(exact[i] - parts[i]), -ws[i], i))
    for i in order[:leftover_units]:
        parts[i] += exp
    return [-p if sign < 0 and p else p for p in parts]
