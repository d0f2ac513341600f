"""Admin for the reconciliation records people set up by hand: the bank accounts whose
statements are imported (and the column mapping of each one's CSV export).

Finance and ops_admin only, by model permission (``orders.roles``: finance has view, add and
change of ``BankAccount``; ops_admin every reconciliation permission); everyone else gets no
menu entry and a 403. Imported rows (payouts, transactions, ERP documents, bank lines) are the
vendors' data and come in through ``import_finance`` only.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from orders import money
from orders.errors import InvalidInput
from reconciliation.importers.bank import COLUMN_KEYS, OPTION_KEYS, mapping_problems
from reconciliation.models import BankAccount

MAPPING_HELP = (
    "JSON object. Columns (the header's names): date (required), amount, or credit and debit; "
    "text (a column or a list of columns), reference, entry_reference (the bank's own id of the "
    "line: the import's key when given), value_date, counterparty, currency. Options: "
    'date_format (e.g. "%d.%m.%Y"; default "%Y-%m-%d"), decimal ("." or ","), delimiter, '
    'encoding (default "utf-8-sig"), skip_rows. Example: {"date": "Booking date", "amount": '
    '"Amount", "text": ["Details", "Name"], "reference": "Reference", "date_format": '
    '"%d.%m.%Y", "decimal": ","}'
)


class BankAccountForm(forms.ModelForm):
    class Meta:
        model = BankAccount
        fields = ["name", "account_number", "currency", "csv_mapping"]
        help_texts = {"csv_mapping": MAPPING_HELP}

    def clean_currency(self) -> str:
        code = str(self.cleaned_data.get("currency") or "").strip().upper()
        try:
            money.minor_units(code)
        except InvalidInput:
            raise forms.ValidationError(f"{code!r} is not an ISO 4217 currency code") from None
        return code

    def clean_csv_mapping(self) -> Any:
        mapping = self.cleaned_data.get("csv_mapping")
        if mapping in (None, "", {}):
            return {}  # no CSV export for this account (camt.053 or MT940 only)
        problems = mapping_problems(mapping)
        if problems:
            raise forms.ValidationError([f"CSV mapping: {p}" for p in problems])
        return mapping


@admin.register(BankAccount)
class BankAccountAdmin(admin.ModelAdmin):
    form = BankAccountForm
    list_display = ["name", "account_number", "currency", "mapped_columns", "line_count"]
    search_fields = ["name", "account_number"]
    ordering = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BankAccount]:
        return super().get_queryset(request).annotate(line_count=Count("lines"))

    @admin.display(description="CSV columns")
    def mapped_columns(self, obj: BankAccount) -> str:
        mapping = obj.csv_mapping or {}
        shown = [f"{key}={mapping[key]}" for key in COLUMN_KEYS if key in mapping]
        if "text" in mapping:
            shown.append(f"text={json.dumps(mapping['text'], ensure_ascii=False)}")
        shown += [f"{key}={mapping[key]}" for key in OPTION_KEYS
                  if key in mapping and key != "text"]  # fmt: skip
        return ", ".join(shown) or "—"

    @admin.display(description="Lines", ordering="line_count")
    def line_count(self, obj: BankAccount) -> int:
        return int(getattr(obj, "line_count", 0))
