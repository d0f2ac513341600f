"""Refund arithmetic: refunding every unit of every line plus the shipping is the order total
exactly, whatever the partition into partial refunds, and no part ever carries a fraction of a
minor unit (a hypothesis property over random orders with discounts, taxes and quantities)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from orders import money
from orders.models import OrderLine
from orders.refunds import _share, line_refund

CURRENCIES = ["USD", "JPY", "KWD", "EUR"]


@st.composite
def orders(draw):
    currency = draw(st.sampled_from(CURRENCIES))
    exp = Decimal(1).scaleb(-money.minor_units(currency))
    units = lambda lo, hi: draw(st.integers(lo, hi)) * exp  # noqa: E731
    n = draw(st.integers(1, 6))
    raw = [(draw(st.integers(1, 12)), units(0, 50_000)) for _ in range(n)]
    gross = [price * qty for qty, price in raw]
    subtotal = sum(gross, Decimal(0))
    discount = min(units(0, 20_000), subtotal)
    taxes_included = draw(st.booleans())
    tax = units(0, 9_000)
    shipping = units(0, 3_000)
    shipping_tax = min(units(0, 500), tax)
    # What order_create does: the discount across the lines by gross, the tax (less the
    # shipping's) across them by what is left after the discount.
    discounts = money.allocate(discount, gross, currency)
    taxable = [g - d for g, d in zip(gross, discounts, strict=True)]
    taxes = money.allocate(tax - shipping_tax, taxable, currency)
    lines = [
        OrderLine(line_no=i, currency=currency, quantity=qty, unit_price=price,
                  discount_allocation=d, tax_allocation=t)
        for i, ((qty, price), d, t) in enumerate(zip(raw, discounts, taxes, strict=True), start=1)
    ]  # fmt: skip
    total = subtotal - discount + shipping + (Decimal(0) if taxes_included else tax)
    return currency, lines, shipping, shipping_tax, taxes_included, total


@st.composite
def partitions(draw, quantity):
    """Split ``quantity`` units into the chunks of successive partial refunds."""
    chunks, left = [], quantity
    while left:
        take = draw(st.integers(1, left))
        chunks.append(take)
        left -= take
    return chunks


@settings(max_examples=300, deadline=None)
@given(data=st.data(), order=orders())
def test_every_unit_refunded_in_any_partition_plus_shipping_is_the_order_total(data, order):
    currency, lines, shipping, shipping_tax, taxes_included, total = order
    exp = Decimal(1).scaleb(-money.minor_units(currency))
    refunded = Decimal(0)
    for line in lines:
        done = 0
        line_money = Decimal(0)
        for chunk in data.draw(partitions(line.quantity)):
            part = line_refund(line, units=chunk, already=done, taxes_included=taxes_included)
            for amount in (part.goods, part.tax, part.money):
                assert amount == amount.quantize(exp), "no residue beyond the minor unit"
            assert part.goods >= 0 and part.tax >= 0
            done += chunk
            line_money += part.money
        # Each line comes back whole, whatever the partition.
        whole = line.unit_price * line.quantity - line.discount_allocation
        assert line_money == (whole if taxes_included else whole + line.tax_allocation)
        refunded += line_money
    refunded += shipping + (Decimal(0) if taxes_included else shipping_tax)
    assert refunded == total


@settings(max_examples=200, deadline=None)
@given(allocation=st.integers(0, 10_000), quantity=st.integers(1, 50), data=st.data())
def test_a_units_share_is_within_one_minor_unit_of_its_exact_share(allocation, quantity, data):
    amount = Decimal(allocation) / 100
    units = data.draw(st.integers(0, quantity))
    share = _share(amount, units, quantity, "USD")
    exact = amount * units / quantity
    assert Decimal(0) <= exact - share < Decimal("0.01")
