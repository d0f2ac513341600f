"""Factories with valid defaults. Orders are made through services (never by writing status)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.test import TestCase

from channels.models import ChannelKind, SalesChannel
from orders.actors import Actor
from orders.models import AccountType, Customer, Order
from orders.services import LineInput, OrderInput, order_create, order_transition


class SalesChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SalesChannel
        django_get_or_create = ("slug",)

    kind = ChannelKind.SHOPIFY
    slug = factory.Sequence(lambda n: f"store-{n}")
    name = factory.LazyAttribute(lambda o: f"Store {o.slug}")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    email = factory.Sequence(lambda n: f"buyer{n}@example.com")
    name = "Test Buyer"
    account_type = AccountType.CONSUMER


class BusinessCustomerFactory(CustomerFactory):
    account_type = AccountType.BUSINESS
    company_name = "Acme Corp"
    net_terms_days = 30
    net_terms_approved = True
    credit_limit = Decimal("10000")


def make_user(username: str, *roles: str, superuser: bool = False) -> Any:
    user = get_user_model().objects.create_user(
        username=username, password="pw-" + username, is_staff=True, is_superuser=superuser
    )
    if roles:
        user.groups.set(Group.objects.filter(name__in=roles))
    return user


_counter = iter(range(1, 10**9))


# A deliverable-looking address per country (it meets that country's address rules).
DEFAULT_ADDRESSES: dict[str, dict[str, str]] = {
    "US": {"line1": "1 Main St", "city": "Springfield", "region_code": "IL",
           "postal_code": "62701", "country_code": "US"},
    "CA": {"line1": "111 Wellington St", "city": "Ottawa", "region_code": "ON",
           "postal_code": "K1A 0A9", "country_code": "CA"},
    "GB": {"line1": "10 Downing Street", "city": "London", "postal_code": "SW1A 2AA",
           "country_code": "GB"},
    "DE": {"line1": "Unter den Linden 77", "city": "Berlin", "postal_code": "10117",
           "country_code": "DE"},
    "AT": {"line1": "Stephansplatz 1", "city": "Wien", "postal_code": "1010",
           "country_code": "AT"},
    "FR": {"line1": "55 Rue du Faubourg Saint-Honore", "city": "Paris", "postal_code": "75008",
           "country_code": "FR"},
    "JP": {"line1": "1-1 Chiyoda", "city": "Chiyoda-ku", "region_code": "13",
           "postal_code": "100-8111", "country_code": "JP"},
}  # fmt: skip


def make_order(
    *,
    channel: SalesChannel | None = None,
    customer: Customer | None = None,
    currency: str = "USD",
    lines: list[tuple[str, int, str]] | None = None,
    shipping: str = "5.00",
    tax: str = "1.50",
    discount: str = "0",
    total: str | None = None,
    external_id: str | None = None,
    country: str = "US",
    pipeline: bool = True,
    paid: bool = False,
) -> Order:
    """An order built by ``order_create``; its after-commit pipeline task runs (eager tasks),
    so a consistent order comes back ``validated`` and an inconsistent one ``on_hold``.
    With ``pipeline=False`` the task is not run and the order stays ``received``; with
    ``paid=True`` the payment is captured before the pipeline sees the order."""
    channel = channel or SalesChannelFactory()
    with TestCase.captureOnCommitCallbacks(execute=pipeline), transaction.atomic():
        pending = transaction.get_connection().run_on_commit
        already = len(pending)
        order = _create(channel, customer, currency, lines, shipping, tax, discount, total,
                        external_id, country)  # fmt: skip
        if paid:
            order_transition(order_id=order.pk, transition="capture_payment",
                             actor=Actor.system("test"))  # fmt: skip
        if not pipeline:
            # Drop the pipeline's doorbell: the order stays `received`, as if the message were
            # still on its way (also in transaction=True tests, where commit would ring it).
            del pending[already:]
    order.refresh_from_db()
    return order


def _create(channel, customer, currency, lines, shipping, tax, discount, total, external_id,
            country) -> Order:  # fmt: skip
    return order_create(
        data=OrderInput(
            channel_id=channel.pk,
            external_id=external_id or f"T{next(_counter)}",
            currency=currency,
            customer_id=(customer or CustomerFactory()).pk,
            lines=[
                LineInput(sku=sku, quantity=qty, unit_price=Decimal(price))
                for sku, qty, price in (lines or [("SKU-1", 2, "10.00")])
            ],
            placed_at=datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
            shipping_total=Decimal(shipping),
            tax_total=Decimal(tax),
            discount_total=Decimal(discount),
            total=Decimal(total) if total is not None else None,
            shipping_address=dict(DEFAULT_ADDRESSES.get(country, {"country_code": country})),
        ),
        actor=Actor.system("test"),
    )


def advance(order: Order, *steps: str, **kwargs: Any) -> Order:
    """Apply transitions in order as the system; returns the fresh order."""
    for step in steps:
        extra = dict(kwargs)
        if step in ("hold", "cancel") and "reason" not in extra:
            extra["reason"] = "test"
        if step == "refund_partially" and "amount" not in extra:
            extra["amount"] = "1.00"
        order = order_transition(order_id=order.pk, transition=step, actor=Actor.system("test"),
                                 **extra)  # fmt: skip
    order.refresh_from_db()
    return order
