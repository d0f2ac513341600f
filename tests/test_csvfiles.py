"""The one rule for every CSV we write: a text cell a spreadsheet would run as a formula is
prefixed with a single quote (OWASP "CSV injection"); numbers stay numbers an ERP can import."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from config.csvfiles import csv_cell, csv_row

DANGEROUS = ["=", "+", "-", "@", "\t", "\r"]


def written(cells: list[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(csv_row(cells))
    return buffer.getvalue()


@pytest.mark.parametrize("lead", DANGEROUS, ids=["eq", "plus", "minus", "at", "tab", "cr"])
def test_a_text_cell_with_a_dangerous_lead_is_quoted(lead):
    text = f'{lead}HYPERLINK("http://evil","x")'
    assert csv_cell(text) == "'" + text
    [row] = csv.reader(io.StringIO(written([text, "ok"]), newline=""))
    assert row == ["'" + text, "ok"]


@pytest.mark.parametrize("text", ["MUG", "12.50", "#1001", "a=b", " =1+1", "'already", ""])
def test_other_text_is_written_as_is(text):
    assert csv_cell(text) == text


@pytest.mark.parametrize("text", ["-12.50", "+3", "-0", "-7"])
def test_a_plain_number_is_not_a_formula_and_stays_as_is(text):
    assert csv_cell(text) == text


@pytest.mark.parametrize("text", ["-1+2", "-12.50\n", "-1e5", "+ 3", "-12,50", "-١٢"])
def test_something_that_only_looks_like_a_number_is_quoted(text):
    assert csv_cell(text) == "'" + text


def test_amounts_and_counts_are_written_as_the_numbers_they_are():
    assert written([Decimal("-12.50"), Decimal("0.00"), -3, 2, None]) == "-12.50,0.00,-3,2,\n"
    # A non-finite amount is no number an ERP imports; as text it follows the text rule.
    assert csv_cell(Decimal("-Infinity")) == "'-Infinity"
    assert csv_cell(Decimal("sNaN")) == "sNaN" and csv_cell(float("-inf")) == "'-inf"
    assert csv_cell(True) == "True"
