"""Bank statements: CSV with the account's mapping, camt.053 and MT940 (test files written from
the standards' layouts), each line once."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orders.errors import InvalidInput
from reconciliation.importers import ImportOptions, import_files
from reconciliation.importers.bank import mapping_problems
from reconciliation.models import BankAccount, BankLine, Source

pytestmark = pytest.mark.django_db

FILES = Path(__file__).parent / "files"
CAMT = FILES / "camt053_statement.xml"
MT940 = FILES / "mt940_statement.sta"


@pytest.fixture
def account():
    return BankAccount.objects.create(
        name="Operating EUR", account_number="DE89 3704 0044 0532 0130 00", currency="EUR",
        csv_mapping={"date": "Buchungstag", "value_date": "Valuta", "amount": "Betrag",
                     "text": ["Verwendungszweck", "Empfaenger"], "reference": "Referenz",
                     "date_format": "%d.%m.%Y", "decimal": ",", "delimiter": ";"},
    )  # fmt: skip


def run(source: str, path: Path, account: BankAccount):
    [result] = import_files([path], options=ImportOptions(source=source, account=account))
    return result


def rows(account: BankAccount) -> list[dict]:
    return list(BankLine.objects.filter(account=account).order_by("pk").values())


def reimport_changes_nothing(source: str, path: Path, account: BankAccount, new: int) -> None:
    first = run(source, path, account)
    before = rows(account)
    second = run(source, path, account)
    assert (first.rows_new, second.rows_new, second.rows_unchanged) == (new, 0, new)
    assert rows(account) == before


# --- CSV -----------------------------------------------------------------------------------------
CSV_TEXT = (
    "Buchungstag;Valuta;Betrag;Verwendungszweck;Empfaenger;Referenz\n"
    "03.03.2026;03.03.2026;41,90;SHOPIFY PAYOUT 623721858;Shopify;PO623721858\n"
    "04.03.2026;04.03.2026;-3,50;KARTENZAHLUNG;Coffee Bar;\n"
    "04.03.2026;04.03.2026;-3,50;KARTENZAHLUNG;Coffee Bar;\n"
    "04.03.2026;05.03.2026;1.234,56;STRIPE PAYOUT po_1Oa;Stripe;po_1Oa\n"
    "04.03.2026;04.03.2026;12,3x;BROKEN;Someone;\n"
    "31.02.2026;04.03.2026;1,00;BAD DATE;Someone;\n"
)


def test_csv_lines_with_the_accounts_mapping(account, tmp_path):
    path = tmp_path / "umsatz.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    result = run(Source.BANK_CSV, path, account)

    assert (result.rows_read, result.rows_new, result.rows_rejected) == (6, 4, 2)
    assert result.errors == [
        {"where": "umsatz.csv:6", "message": "amount '12,3x' is not an amount"},
        {"where": "umsatz.csv:7", "message": "date '31.02.2026' is not a date (%d.%m.%Y)"},
    ]
    lines = BankLine.objects.filter(account=account).order_by("pk")
    assert [(x.booked_on, x.amount, x.text, x.reference) for x in lines] == [
        (date(2026, 3, 3), Decimal("41.90"), "SHOPIFY PAYOUT 623721858 Shopify", "PO623721858"),
        (date(2026, 3, 4), Decimal("-3.50"), "KARTENZAHLUNG Coffee Bar", ""),
        (date(2026, 3, 4), Decimal("-3.50"), "KARTENZAHLUNG Coffee Bar", ""),
        (date(2026, 3, 4), Decimal("1234.56"), "STRIPE PAYOUT po_1Oa Stripe", "po_1Oa"),
    ]
    assert lines[3].value_on == date(2026, 3, 5)
    # Two identical coffee payments: two lines, told apart by the occurrence counter.
    keys = [x.dedup_key for x in lines]
    assert keys[1].startswith("sha256:") and keys[1].endswith(":1")
    assert keys[2] == keys[1][:-1] + "2"


def test_the_same_csv_twice_changes_nothing(account, tmp_path):
    path = tmp_path / "umsatz.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    reimport_changes_nothing(Source.BANK_CSV, path, account, new=4)


def test_csv_entry_reference_column_is_the_key_and_credit_debit_columns(account, tmp_path):
    account.csv_mapping = {"date": "Date", "credit": "Credit", "debit": "Debit",
                           "text": "Description", "entry_reference": "Bank ref",
                           "currency": "Currency"}  # fmt: skip
    account.save()
    path = tmp_path / "export.csv"
    path.write_text(
        "Date,Description,Credit,Debit,Currency,Bank ref\n"
        '2026-03-03,PAYOUT,"1,041.90",,EUR,B-1\n'
        "2026-03-04,FEE,,4.00,EUR,B-2\n"
        "2026-03-04,FEE,,-4.00,EUR,B-3\n"
        "2026-03-04,USD IN,10.00,,USD,B-4\n",
        encoding="utf-8",
    )
    result = run(Source.BANK_CSV, path, account)
    message = "entry in USD; the account Operating EUR is in EUR"
    assert result.errors == [{"where": "export.csv:5", "message": message}]
    got = list(BankLine.objects.order_by("pk").values_list("dedup_key", "amount"))
    assert got == [("B-1", Decimal("1041.90")), ("B-2", Decimal("-4.00")),
                   ("B-3", Decimal("-4.00"))]  # fmt: skip


def test_a_csv_without_a_mapped_column_is_refused_whole(account, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("Date;Amount\n2026-03-03;1,00\n", encoding="utf-8")
    result = run(Source.BANK_CSV, path, account)
    assert result.rows_new == 0 and result.rows_rejected == 1
    assert result.errors[0]["where"] == "other.csv:1"
    assert "no column 'Buchungstag'" in result.errors[0]["message"]


def test_mapping_problems_name_each_mistake():
    assert mapping_problems({"date": "D", "amount": "A"}) == []
    problems = mapping_problems({"amount": "A", "credit": "C", "decimal": ";", "colour": "x",
                                 "encoding": "klingon"})  # fmt: skip
    assert problems == [
        "unknown keys colour (known: date, value_date, amount, credit, debit, reference, "
        "entry_reference, counterparty, currency, text, date_format, decimal, delimiter, "
        "encoding, skip_rows)",
        "date (the booking date's column) is required",
        "give amount, or credit and debit, not both",
        'decimal must be "." or ","',
        "encoding 'klingon' is not an encoding",
    ]
    assert mapping_problems([]) == ["it must be a JSON object"]


def test_a_statement_needs_its_account():
    with pytest.raises(InvalidInput, match="needs its bank account"):
        import_files([CAMT], options=ImportOptions(source=Source.CAMT053))


# --- camt.053 ------------------------------------------------------------------------------------
def test_camt053_entries_become_lines(account):
    result = run(Source.CAMT053, CAMT, account)

    stmt = "camt053_statement.xml:/Document/BkToCstmrStmt/Stmt[1]"
    assert result.errors == [
        {
            "where": f"{stmt}/Ntry[7]/Amt",
            "message": "'12,3x' is not an amount (Not an amount: '12,3x')",
        },
        {
            "where": f"{stmt}/Ntry[6]",
            "message": "entry in USD; the account Operating EUR is in EUR",
        },
    ]
    assert (result.rows_new, result.rows_rejected) == (5, 2)  # the pending entry is skipped
    lines = list(BankLine.objects.order_by("pk"))
    payout, batch, coffee1, coffee2, fee = lines
    assert (payout.dedup_key, payout.amount, payout.currency, payout.booked_on,
            payout.value_on) == ("2026030300012345", Decimal("41.90"), "EUR", date(2026, 3, 3),
                                 date(2026, 3, 3))  # fmt: skip
    assert payout.text == "SHOPIFY PAYOUT 623721858 SEPA Credit Transfer"
    assert payout.reference == "PO623721858"
    assert payout.counterparty == "Shopify Payments Europe Ltd"
    # The batch: one line, its texts joined, NtryRef as key, the first real end-to-end id.
    assert (batch.dedup_key, batch.amount, batch.text, batch.reference) == (
        "0002",
        Decimal("120.40"),
        "STRIPE PAYOUT po_1Oa STRIPE PAYOUT po_1Ob",
        "po_1Ob",
    )
    assert batch.value_on == date(2026, 3, 5) and batch.raw["transactions"] == 2
    # Debits are negative; identical ones without reference are two lines.
    assert coffee1.amount == coffee2.amount == Decimal("-3.50")
    assert coffee1.dedup_key != coffee2.dedup_key
    assert (fee.dedup_key, fee.amount) == ("2026030400099999", Decimal("-4.00"))


def test_camt053_twice_changes_nothing(account):
    reimport_changes_nothing(Source.CAMT053, CAMT, account, new=5)


def test_camt053_version_02_reads_the_same(account, tmp_path):
    text = CAMT.read_text(encoding="utf-8").replace("camt.053.001.08", "camt.053.001.02")
    # .02 has Sts as text, not Sts/Cd
    text = text.replace("<Sts><Cd>BOOK</Cd></Sts>", "<Sts>BOOK</Sts>").replace(
        "<Sts><Cd>PDNG</Cd></Sts>", "<Sts>PDNG</Sts>"
    )
    path = tmp_path / "v02.xml"
    path.write_text(text, encoding="utf-8")
    result = run(Source.CAMT053, path, account)
    assert (result.rows_new, result.rows_rejected) == (5, 2)


def test_camt053_for_another_account_or_not_camt_is_refused(account, tmp_path):
    other = tmp_path / "other.xml"
    other.write_text(
        CAMT.read_text(encoding="utf-8").replace(
            "DE89370400440532013000", "FR1420041010050500013M02606"
        ),
        encoding="utf-8",
    )
    result = run(Source.CAMT053, other, account)
    assert result.rows_new == 0
    assert result.errors == [{
        "where": "other.xml:/Document/BkToCstmrStmt/Stmt[1]",
        "message": "the statement is for account FR1420041010050500013M02606, not Operating "
                   "EUR's"}]  # fmt: skip
    pain = tmp_path / "pain.xml"
    pain.write_text('<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>')
    assert (
        run(Source.CAMT053, pain, account)
        .errors[0]["message"]
        .startswith("not a camt.053.001.02 to .08 statement")
    )
    dtd = tmp_path / "dtd.xml"
    dtd.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')
    assert run(Source.CAMT053, dtd, account).errors == [
        {"where": "dtd.xml:1", "message": "a statement with a DTD or entities is not read"}
    ]


# --- MT940 ---------------------------------------------------------------------------------------
def test_mt940_entries_become_lines_and_a_bad_one_is_rejected_at_its_line(account):
    result = run(Source.MT940, MT940, account)

    assert result.errors == [{"where": "mt940_statement.sta:11",
                              "message": "':61:26AB0304D9,99NMSCNONREF' cannot be read as an "
                                         "MT940 entry"}]  # fmt: skip
    assert (result.rows_new, result.rows_rejected) == (4, 1)
    payout, coffee1, coffee2, stripe = BankLine.objects.order_by("pk")
    assert (payout.dedup_key, payout.amount, payout.reference, payout.booked_on) == (
        "2026030300012345",
        Decimal("41.90"),
        "PO623721858",
        date(2026, 3, 3),
    )
    assert payout.text == "SEPA-GUTSCHRIFT SHOPIFY PAYOUT 623721858"
    assert payout.counterparty == "SHOPIFY PAYMENTS"
    assert coffee1.amount == coffee2.amount == Decimal("-3.50")
    assert coffee1.reference == "" and coffee1.dedup_key != coffee2.dedup_key
    assert coffee1.raw["line"] == 7 and coffee2.raw["line"] == 9
    assert (stripe.booked_on, stripe.value_on, stripe.amount, stripe.dedup_key) == (
        date(2026, 3, 4),
        date(2026, 3, 5),
        Decimal("120.40"),
        "2026030400077777",
    )
    assert stripe.text == "STRIPE PAYOUTS po_1Oa po_1Ob"


def test_mt940_twice_changes_nothing(account):
    reimport_changes_nothing(Source.MT940, MT940, account, new=4)


def test_mt940_in_another_currency_is_rejected(account, tmp_path):
    path = tmp_path / "usd.sta"
    path.write_text(MT940.read_text().replace("EUR", "USD"))
    result = run(Source.MT940, path, account)
    assert result.rows_new == 0
    assert {e["message"] for e in result.errors} >= {
        "entry in USD; the account Operating EUR is in EUR"
    }


def test_the_command_imports_a_statement_and_exits_1_on_a_rejected_row(account, capsys):
    with pytest.raises(CommandError) as exc:
        call_command("import_finance", "--source", "mt940", "--account", "Operating EUR",
                     "--no-progress", str(MT940))  # fmt: skip
    assert exc.value.returncode == 1
    out, err = capsys.readouterr()
    assert "mt940_statement.sta: 5 read, 4 new" in out
    assert "mt940_statement.sta:11:" in err
