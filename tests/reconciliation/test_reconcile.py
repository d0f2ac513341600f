"""`reconcile --period`: the table, exit 1 while anything is unexplained, an incident for it;
a closed period keeps its figures and a re-run shows what changed since."""

from __future__ import annotations

from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orders.models import Incident
from reconciliation.models import PeriodClose, VarianceItem
from reconciliation.services import period_close
from reconciliation.variance import Period, item_resolve
from tests.factories import make_user
from tests.reconciliation.test_variance import Month, at

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("reconcile", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(*args: str) -> str:
    """The output of a run that ends with exit code 1 (money unexplained)."""
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("reconcile", *args, stdout=out, stderr=StringIO())
    assert failed.value.returncode == 1
    return out.getvalue()


def test_reconcile_prints_the_table_and_fails_while_money_is_unexplained():
    m = Month()
    order = m.order("1")
    m.invoice("INV-1", order)
    p = m.payout("P1", "25.43", date(2026, 11, 3))  # never deposited
    m.tx("1", "26.50", fee="1.07", payout=p, when=at(2))

    with pytest.raises(CommandError, match=r"unexplained: 25.43 USD") as failed:
        run("--period", "2026-11", "--no-import")
    assert failed.value.returncode == 1
    incident = Incident.objects.get(category="reconciliation_variance")
    assert incident.details["unexplained"] == {"payouts_bank": "25.43"}

    finance = make_user("fin", "finance")
    item = VarianceItem.objects.get(category="unexplained")
    item_resolve(item_id=item.pk, category="timing", note="arrives 1 Dec", user=finance)
    out, _err = run("--period", "2026-11", "--no-import")

    header, row = out.splitlines()[1:3]
    assert header.split() == ["channel", "cur", "sales", "refunds", "ERP", "processor", "fees",
                              "payouts", "bank", "variance", "%", "unexplained"]  # fmt: skip
    assert row.split() == ["shop", "USD", "26.50", "0.00", "26.50", "26.50", "1.07", "25.43",
                           "0.00", "0.00%", "0.00"]  # fmt: skip
    assert "Nothing unexplained." in out


def test_a_closed_period_keeps_its_figures_and_a_rerun_shows_what_changed():
    m = Month()
    order = m.order("1")
    m.invoice("INV-1", order)
    finance = make_user("fin", "finance")
    # No processor transaction names the order: unexplained, and the period still closes.
    assert "no processor transaction names it" in run_failing("--period", "2026-11", "--no-import")
    closed = period_close(period=Period.parse("2026-11"), user=finance, note="November done")
    frozen = closed.figures
    with pytest.raises(Exception, match="closed already"):
        period_close(period=Period.parse("2026-11"), user=finance)

    late = m.order("2")  # an order that turns up after the close
    m.invoice("INV-2", late)
    out = run_failing("--period", "2026-11", "--no-import")

    assert "Closed by fin on" in out
    assert "shop USD sales: 26.50 at the close, 53.00 now" in out
    assert "shop USD erp: 26.50 at the close, 53.00 now" in out
    assert PeriodClose.objects.get().figures == frozen
    assert frozen["rows"][0]["columns"]["sales"] == "26.50"


def test_a_bad_period_or_channel_is_a_clear_error():
    with pytest.raises(CommandError, match="not a period"):
        run("--period", "Nov", "--no-import")
    with pytest.raises(CommandError, match="No channel 'nope'"):
        run("--period", "2026-11", "--channel", "nope", "--no-import")
