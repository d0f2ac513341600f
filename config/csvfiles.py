"""CSV files in and out: reading operators' files in management commands (one way to open them
and to say what is wrong with the file itself; the rows are each command's business), and the one
rule every CSV we write follows so that a spreadsheet never runs a cell as a formula."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import IO, TypeVar

from django.core.management.base import CommandError

T = TypeVar("T")

# OWASP "CSV injection": a spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
# What a spreadsheet reads as a number, not a formula (ASCII digits only: `\d` is any script).
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def csv_cell(value: object) -> object:
    """One cell as we write it. Amounts and counts (``Decimal``, ``int``, finite ``float``) are
    numbers and go out as they are, so an ERP imports ``-12.50`` as a refund and not as text.
    Everything else is data (ids, names, order numbers, SKUs, titles), written as text: if it
    starts with a formula lead it gets a leading ``'``, which spreadsheets show as text and
    never evaluate; text that is a plain number (``-12.50``) is no formula and is left alone.
    ``None`` is an empty cell, as ``csv`` writes it."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, Decimal) and value.is_finite():
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    text = str(value)
    if text.startswith(FORMULA_LEADS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_row(cells: Iterable[object]) -> list[object]:
    """A row for ``csv.writer.writerow``: every cell through ``csv_cell``."""
    return [csv_cell(cell) for cell in cells]


def read_csv_file(path: Path, read: Callable[[Path, IO[str]], T]) -> T:
    """``read(path, handle)`` on the opened file (UTF-8, a BOM allowed, newlines as csv needs).
    A missing or unreadable file, or one that is not UTF-8, is a CommandError naming it."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
    try:
        with handle:
            return read(path, handle)
    except UnicodeDecodeError as exc:
        raise CommandError(
            f"{path}: not UTF-8 text (byte {exc.start}); save it as CSV UTF-8"
        ) from None
