"""``add_warehouse`` and ``import_stock`` as an operator runs them: real files, the real database,
clear messages and a non-zero exit on bad input, and safe to run twice."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fulfillment.models import StockLevel, Warehouse
from fulfillment.services import stock_reserve_for_order
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, levels, stock

pytestmark = pytest.mark.django_db


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(*args: str) -> Run:
    """Run a command as ``manage.py`` would; a ``SystemExit`` becomes the exit code."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exc:
        return Run(int(exc.code or 0), out.getvalue(), err.getvalue())
    return Run(0, out.getvalue(), err.getvalue())


def fails(*args: str) -> CommandError:
    with pytest.raises(CommandError) as exc:
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    return exc.value


def csv_file(tmp_path: Path, text: str, name: str = "stock.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- add_warehouse -----------------------------------------------------------------------------
def test_add_warehouse_creates_it_and_a_second_run_changes_nothing():
    first = run("add_warehouse", "--code", "NJ1", "--country", "us", "--kind", "3pl",
                "--priority", "5", "--region", "us-nj", "--name", "Newark 3PL")  # fmt: skip
    again = run("add_warehouse", "--code", "NJ1", "--country", "US", "--kind", "3pl",
                "--priority", "5", "--region", "US-NJ", "--name", "Newark 3PL")  # fmt: skip

    assert first.code == 0 and "Created warehouse NJ1" in first.out
    assert again.code == 0 and "nothing changed" in again.out
    w = Warehouse.objects.get()
    assert (w.code, w.country, w.region, w.kind, w.priority, w.name, w.ships_international) == (
        "NJ1", "US", "US-NJ", "3pl", 5, "Newark 3PL", True,
    )  # fmt: skip


def test_add_warehouse_updates_only_what_is_given():
    run("add_warehouse", "--code", "GB1", "--country", "GB", "--priority", "7")

    result = run("add_warehouse", "--code", "GB1", "--country", "GB", "--domestic-only")

    assert result.code == 0 and "Updated warehouse GB1" in result.out
    assert "ships_international" in result.out
    w = Warehouse.objects.get(code="GB1")
    assert (w.priority, w.ships_international, w.kind) == (7, False, "own")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--code", "X1", "--country", "XX"], "'XX' is not an ISO 3166-1 alpha-2 code"),
        (["--code", "X1", "--country", "USA"], "'USA' is not an ISO 3166-1 alpha-2 code"),
        (["--code", "bad code", "--country", "US"], "must be 1-32 letters"),
        (["--code", "X1", "--country", "US", "--priority", "high"], "whole number"),
        (["--code", "X1", "--country", "US", "--priority", "-1"], "between 0 and"),
        (["--code", "X1", "--country", "US", "--cutoff", "2pm"], "--cutoff must be a time"),
        (
            ["--code", "X1", "--country", "US", "--time-zone", "Mars/Olympus"],
            "'Mars/Olympus' is not an IANA time zone name",
        ),
    ],
)
def test_add_warehouse_refuses_bad_input_with_a_clear_message(args, message):
    assert message in str(fails("add_warehouse", *args))
    assert not Warehouse.objects.exists()


def test_add_warehouse_sets_the_same_day_cut_off_and_time_zone(settings):
    assert run("add_warehouse", "--code", "NJ1", "--country", "US").code == 0
    default = Warehouse.objects.get(code="NJ1")
    assert (default.cutoff_time, default.time_zone) == (time(14, 0), settings.TIME_ZONE)
    run("add_warehouse", "--code", "NJ1", "--country", "US", "--cutoff", "15:30",
        "--time-zone", "America/New_York")  # fmt: skip
    changed = Warehouse.objects.get(code="NJ1")
    assert (changed.cutoff_time, changed.time_zone) == (time(15, 30), "America/New_York")


def test_add_warehouse_refuses_an_unknown_kind_and_both_scopes():
    with pytest.raises(CommandError, match="invalid choice: 'dropship'"):
        call_command("add_warehouse", "--code", "X1", "--country", "US", "--kind", "dropship",
                     stderr=io.StringIO())  # fmt: skip
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command("add_warehouse", "--code", "X1", "--country", "US", "--international",
                     "--domestic-only", stderr=io.StringIO())  # fmt: skip


# --- import_stock ------------------------------------------------------------------------------
def test_import_stock_sets_on_hand_and_a_second_run_changes_nothing(tmp_path):
    add_warehouse("A")
    add_warehouse("B")
    path = csv_file(tmp_path, "sku,warehouse,on_hand\nMUG,A,5\nMUG,B,3\nTEE,A,0\n")

    first = run("import_stock", path)
    again = run("import_stock", path)

    assert first.code == 0, first.err
    assert "Set 3 stock level(s); rejected 0 row(s)." in first.out
    assert again.code == 0
    assert levels("MUG") == {"A": (5, 0), "B": (3, 0)}
    assert levels("TEE") == {"A": (0, 0)}
    assert StockLevel.objects.count() == 3


def test_import_stock_reports_every_rejected_row_with_its_line_and_exits_1(tmp_path):
    add_warehouse("A")
    stock("HELD", "A", 10)
    order = make_order(paid=True, lines=[("HELD", 4, "10.00")], pipeline=False)
    assert stock_reserve_for_order(order_id=order.pk).outcome == "reserved"
    path = csv_file(
        tmp_path,
        "sku,warehouse,on_hand\n"
        "MUG,A,5\n"  # 2: fine
        "MUG,NOPE,5\n"  # 3: unknown warehouse
        "TEE,A,-2\n"  # 4: negative
        "CAP,A,1.5\n"  # 5: not a whole number
        "HAT,A,lots\n"  # 6: not a number
        "HELD,A,3\n"  # 7: below the 4 reserved
        ",A,1\n"  # 8: no sku
        "MUG,A,6\n"  # 9: duplicate of line 2
        "BAG,A,\n",  # 10: empty
    )

    result = run("import_stock", path)

    assert result.code == 1
    assert "Set 1 stock level(s); rejected 8 row(s)." in result.out
    err = result.err.splitlines()
    assert err == [
        "line 3: unknown warehouse 'NOPE' (add it with add_warehouse)",
        "line 4: on_hand -2 for TEE at A is negative",
        "line 5: on_hand '1.5' for CAP at A is not a whole number",
        "line 6: on_hand 'lots' for HAT at A is not a whole number",
        "line 7: on_hand 3 for HELD at A is below the 4 unit(s) reserved there",
        "line 8: sku is empty",
        "line 9: duplicate MUG at A (first on line 2)",
        "line 10: on_hand is empty for BAG at A",
    ]
    assert levels("MUG") == {"A": (5, 0)}  # the good row is applied
    assert levels("HELD") == {"A": (10, 4)}  # the refused one is not
    assert not StockLevel.objects.filter(sku__in=["TEE", "CAP", "HAT", "BAG"]).exists()


def test_import_stock_dry_run_changes_nothing(tmp_path):
    add_warehouse("A")
    stock("MUG", "A", 1)
    path = csv_file(tmp_path, "sku,warehouse,on_hand\nMUG,A,9\nTEE,A,4\nCAP,Z,1\n")

    result = run("import_stock", path, "--dry-run")

    assert result.code == 1  # a rejected row still fails the run
    assert "Dry run: would set 2 stock level(s); rejected 1 row(s)." in result.out
    assert "line 4: unknown warehouse 'Z'" in result.err
    assert levels("MUG") == {"A": (1, 0)}
    assert not StockLevel.objects.filter(sku="TEE").exists()


def test_import_stock_retries_backordered_orders_after_a_real_import(tmp_path):
    add_warehouse("A")
    order = make_order(paid=True, lines=[("MUG", 2, "10.00")])
    assert order.status == "backordered"

    result = run("import_stock", csv_file(tmp_path, "sku,warehouse,on_hand\nMUG,A,5\n"))

    assert result.code == 0
    assert "Backordered orders will be retried." in result.out
    order.refresh_from_db()
    assert order.status == "allocated"
    assert levels("MUG") == {"A": (5, 2)}


def test_import_stock_reports_progress_every_1000_rows(tmp_path):
    add_warehouse("A")
    rows = "".join(f"SKU-{i},A,{i % 7}\n" for i in range(2100))
    result = run("import_stock", csv_file(tmp_path, "sku,warehouse,on_hand\n" + rows))

    assert result.code == 0
    assert "1000/2100 rows" in result.out and "2000/2100 rows" in result.out
    assert StockLevel.objects.count() == 2100


def test_import_stock_refuses_a_bad_file(tmp_path):
    assert "Cannot read" in str(fails("import_stock", str(tmp_path / "missing.csv")))
    bad_header = csv_file(tmp_path, "sku,qty\nMUG,1\n")
    assert "header must include warehouse, on_hand" in str(fails("import_stock", bad_header))
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("sku,warehouse,on_hand\nCAFÉ,A,1\n".encode("latin-1"))
    assert "not UTF-8" in str(fails("import_stock", str(latin1)))
