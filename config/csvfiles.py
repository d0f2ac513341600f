"""Reading operators' CSV files in management commands: one way to open them and to say what
is wrong with the file itself (the rows are each command's business)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

from django.core.management.base import CommandError

T = TypeVar("T")


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
