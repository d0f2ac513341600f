"""Money: ISO 4217 minor units, explicit rounding, and allocation that sums exactly."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders import money
from orders.errors import InvalidInput

D = Decimal


@pytest.mark.parametrize(
    "amount,currency,rounding,expected",
    [
        ("1234.5", "JPY", "ROUND_HALF_UP", D("1235")),
        ("1234.5", "JPY", "ROUND_HALF_EVEN", D("1234")),
        ("1235.5", "JPY", "ROUND_HALF_EVEN", D("1236")),
        ("0.4", "JPY", "ROUND_HALF_UP", D("0")),
        ("10.005", "USD", "ROUND_HALF_UP", D("10.01")),
        ("10.005", "USD", "ROUND_HALF_EVEN", D("10.00")),
        ("10.015", "USD", "ROUND_HALF_EVEN", D("10.02")),
        ("10.019", "USD", "ROUND_DOWN", D("10.01")),
        ("-2.345", "USD", "ROUND_HALF_UP", D("-2.35")),
        ("1.0005", "KWD", "ROUND_HALF_UP", D("1.001")),
        ("1.0005", "KWD", "ROUND_HALF_EVEN", D("1.000")),
        ("7", "KWD", "ROUND_HALF_UP", D("7.000")),
        ("19.99", "EUR", "ROUND_HALF_UP", D("19.99")),
    ],
)
def test_amounts_are_quantized_to_the_currency_minor_units_with_the_given_rounding(
    amount, currency, rounding, expected
):
    result = money.quantize(amount, currency, rounding=rounding)
    assert result == expected
    assert result.as_tuple().exponent == expected.as_tuple().exponent


def test_minor_units_follow_iso_4217():
    assert (money.minor_units("JPY"), money.minor_units("USD"), money.minor_units("KWD")) == (
        0, 2, 3,
    )  # fmt: skip
    assert money.minor_units("usd") == 2


def test_floats_are_refused_as_money():
    with pytest.raises(InvalidInput, match="must not be floats"):
        money.quantize(0.1, "USD", rounding="ROUND_HALF_UP")
    with pytest.raises(InvalidInput, match="must not be floats"):
        money.to_decimal(1.5)


@pytest.mark.parametrize("bad", ["abc", "", "NaN", "Infinity", None, object()])
def test_non_amounts_are_refused(bad):
    with pytest.raises(InvalidInput):
        money.to_decimal(bad)


def test_unknown_currencies_and_rounding_modes_are_refused():
    with pytest.raises(InvalidInput, match="Unknown currency code 'ZZZ'"):
        money.quantize("1", "ZZZ", rounding="ROUND_HALF_UP")
    with pytest.raises(InvalidInput, match="Unknown rounding mode"):
        money.quantize("1", "USD", rounding="ROUND_SOMETIMES")


def test_a_discount_is_allocated_in_proportion_and_the_remainder_goes_to_the_largest_share():
    parts = money.allocate(D("10.00"), [D("30.00"), D("30.00"), D("30.00")], "USD")
    assert parts == [D("3.34"), D("3.33"), D("3.33")]
    parts = money.allocate(D("100"), [D("1"), D("2"), D("3")], "JPY")
    assert parts == [D("17"), D("33"), D("50")]
    parts = money.allocate(D("1.000"), [D("1"), D("1"), D("1")], "KWD")
    assert sum(parts) == D("1.000") and parts == [D("0.334"), D("0.333"), D("0.333")]


def test_allocation_refuses_an_amount_finer_than_the_currency():
    with pytest.raises(InvalidInput, match="more decimals than USD allows"):
        money.allocate(D("1.005"), [1, 1], "USD")
    with pytest.raises(InvalidInput, match="no lines"):
        money.allocate(D("1.00"), [], "USD")
    with pytest.raises(InvalidInput, match="negative"):
        money.allocate(D("1.00"), [1, -1], "USD")


def test_zero_weights_share_evenly_and_refunds_allocate_negative():
    assert money.allocate(D("0.05"), [0, 0], "USD") == [D("0.03"), D("0.02")]
    assert money.allocate(D("-0.05"), [1, 1, 0], "USD") == [D("-0.03"), D("-0.02"), D("0.00")]
    assert str(money.allocate(D("-0.01"), [1, 1], "USD")[1]) == "0.00"  # never "-0.00"


CURRENCIES = st.sampled_from(["JPY", "USD", "EUR", "KWD", "BHD", "CLF"])


@st.composite
def allocations(draw):
    currency = draw(CURRENCIES)
    places = money.minor_units(currency)
    units = draw(st.integers(min_value=-(10**9), max_value=10**9))
    total = D(units).scaleb(-places)
    weights = draw(
        st.lists(
            st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False),
            min_size=1,
            max_size=30,
        )
    )
    return currency, total, weights


@given(allocations())
def test_allocation_always_sums_exactly_and_each_part_is_within_one_minor_unit(case):
    currency, total, weights = case
    parts = money.allocate(total, weights, currency)
    unit = D(1).scaleb(-money.minor_units(currency))

    assert sum(parts, D(0)) == total
    assert len(parts) == len(weights)
    for part in parts:
        assert part == part.quantize(unit)  # whole minor units
        assert part == 0 or (part > 0) == (total > 0)  # same sign as the total
    weight_sum = sum(weights, D(0))
    if weight_sum:
        for part, weight in zip(parts, weights, strict=True):
            exact = total * weight / weight_sum
            assert abs(part - exact) < unit
    assert money.allocate(total, weights, currency) == parts  # deterministic
