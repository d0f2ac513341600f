"""`setup_demo` gives a new user something to look at, and is safe to run twice."""

from io import StringIO

from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import RequestFactory

from orders.models import Incident, Order, OrderEvent


def run_demo():
    out = StringIO()
    call_command("setup_demo", stdout=out)
    return out.getvalue()


def test_setup_demo_creates_role_users_and_orders_in_several_states(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    output = run_demo()

    statuses = set(Order.objects.values_list("status", flat=True))
    assert {"received", "validated", "on_hold", "in_review", "fulfilling", "closed",
            "cancelled", "backordered", "partially_shipped"} <= statuses  # fmt: skip
    payments = set(Order.objects.values_list("payment_status", flat=True))
    assert {"pending", "authorized", "paid", "net_terms", "partially_refunded"} <= payments
    assert Incident.objects.filter(category="schema_invalid").exists()
    users = get_user_model().objects.in_bulk(field_name="username")
    for name, role in [("cs", "customer_service"), ("reviewer", "reviewer"),
                       ("finance", "finance"), ("ops", "ops_admin")]:  # fmt: skip
        assert list(users[name].groups.values_list("name", flat=True)) == [role]
        assert users[name].is_staff and not users[name].is_superuser
    assert users["admin"].is_superuser
    # The printed passwords work.
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in users:
            request = RequestFactory().post("/admin/login/")
            assert authenticate(request, username=parts[0], password=parts[1]) is not None
    assert "Demo data ready: 10 new order(s)." in output


def test_setup_demo_run_twice_changes_nothing_and_keeps_the_passwords(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = run_demo()
    counts = (Order.objects.count(), OrderEvent.objects.count(), Incident.objects.count(),
              get_user_model().objects.count())  # fmt: skip
    second = run_demo()
    assert counts == (Order.objects.count(), OrderEvent.objects.count(),
                      Incident.objects.count(), get_user_model().objects.count())  # fmt: skip
    assert "Demo data ready: 0 new order(s)." in second
    password_lines = [ln for ln in first.splitlines() if ln.startswith("  ")]
    assert password_lines == [ln for ln in second.splitlines() if ln.startswith("  ")]
    assert (tmp_path / "demo-credentials.txt").stat().st_mode & 0o077 == 0
