"""The bank account admin: finance and ops_admin only; the CSV mapping is checked key by key."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from reconciliation.models import BankAccount

pytestmark = pytest.mark.django_db

ADD = reverse("admin:reconciliation_bankaccount_add")
LIST = reverse("admin:reconciliation_bankaccount_changelist")
GOOD = {"date": "Booking date", "amount": "Amount", "text": ["Details", "Name"],
        "date_format": "%d.%m.%Y", "decimal": ","}  # fmt: skip


def post(client, user, mapping, currency="eur"):
    client.force_login(user)
    return client.post(ADD, {"name": "Operating EUR", "account_number": "DE89370400440532013000",
                             "currency": currency, "csv_mapping": json.dumps(mapping)})  # fmt: skip


@pytest.mark.parametrize("who", ["finance_user", "ops_user"])
def test_finance_and_ops_add_an_account_with_its_mapping(client, who, request):
    user = request.getfixturevalue(who)
    response = post(client, user, GOOD)
    assert response.status_code == 302, response.content.decode()[:2000]
    account = BankAccount.objects.get()
    assert (account.currency, account.csv_mapping) == ("EUR", GOOD)
    listing = client.get(LIST)
    assert listing.status_code == 200
    assert "date=Booking date, amount=Amount" in listing.content.decode()


def test_a_mapping_with_unknown_keys_or_no_amount_is_refused_in_words(client, finance_user):
    response = post(client, finance_user, {"date": "D", "amout": "A"}, currency="XYZ")
    assert response.status_code == 200 and not BankAccount.objects.exists()
    page = response.content.decode()
    assert "CSV mapping: unknown keys amout" in page
    assert "CSV mapping: amount (or credit and debit) is required" in page
    assert "&#x27;XYZ&#x27; is not an ISO 4217 currency code" in page


def test_other_roles_cannot_open_it(client, cs_user, reviewer_user):
    for user in (cs_user, reviewer_user):
        client.force_login(user)
        assert client.get(LIST).status_code == 403
        assert client.get(ADD).status_code == 403
