"""Role groups (customer_service, reviewer, finance, ops_admin, data_steward) and least privilege.

The groups come from migration ``orders.0003_roles`` and the post_migrate hook; their permissions
are exactly ``orders.roles.ROLES``. The service refuses what a role may not do, and the admin
neither offers it nor lets a hand-made POST through.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.apps import apps as global_apps
from django.contrib import messages
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from orders.actors import Actor
from orders.errors import PermissionRefused
from orders.roles import PERSONAL_DATA_WHOLE, ROLES, sync_roles
from orders.services import order_transition
from tests.factories import BusinessCustomerFactory, advance, make_order, make_user

PAYMENT_TRANSITIONS = {
    "authorize_payment", "capture_payment", "grant_net_terms", "settle_invoice",
    "refund_partially", "refund",
}  # fmt: skip


def _expand(patterns: list[str]) -> set[str]:
    """``app.codename`` / ``app.*`` patterns as the set of permissions they name, less the
    ``-app.codename`` ones."""
    result: set[str] = set()
    for pattern in patterns:
        if pattern.startswith("-"):
            continue
        app_label, codename = pattern.split(".", 1)
        qs = Permission.objects.filter(content_type__app_label=app_label)
        if codename != "*":
            qs = qs.filter(codename=codename)
            assert qs.exists(), f"ROLES names a permission that does not exist: {pattern}"
        result.update(f"{app_label}.{c}" for c in qs.values_list("codename", flat=True))
    return result - {pattern[1:] for pattern in patterns if pattern.startswith("-")}


def _group_perms(name: str) -> set[str]:
    return {
        f"{app_label}.{codename}"
        for app_label, codename in Group.objects.get(name=name).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def _snapshot(order_id: int) -> tuple:
    from orders.models import Order

    order = Order.objects.get(pk=order_id)
    return order.status, order.payment_status, order.refunded_total, order.events.count()


def _as(user) -> Actor:
    return Actor.for_user(user)


# --- the groups ---------------------------------------------------------------------------------
def test_the_five_role_groups_exist_after_migrations(db):
    assert set(ROLES) == {"customer_service", "reviewer", "finance", "ops_admin", "data_steward"}
    assert set(Group.objects.filter(name__in=ROLES).values_list("name", flat=True)) == set(ROLES)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_group_has_exactly_the_permissions_of_its_role(db, role):
    expected = _expand(ROLES[role])

    assert expected  # a role that grants nothing is a typo, not least privilege
    assert _group_perms(role) == expected


def test_ops_admin_holds_every_permission_of_the_back_office_apps_but_personal_data_whole(db):
    perms = _group_perms("ops_admin")

    for app_label in ("orders", "channels", "fulfillment", "reviews", "reconciliation"):
        all_of_app = Permission.objects.filter(content_type__app_label=app_label)
        assert all_of_app.exists()
        everything = {f"{app_label}.{p.codename}" for p in all_of_app}
        assert everything - set(PERSONAL_DATA_WHOLE) <= perms
    assert not perms & set(PERSONAL_DATA_WHOLE)


def test_only_the_data_steward_sees_personal_data_whole(db):
    whole = set(PERSONAL_DATA_WHOLE)
    assert whole <= _group_perms("data_steward")
    for role in set(ROLES) - {"data_steward"}:
        assert not _group_perms(role) & (whole - {"orders.view_contact_details"}), role
    # Street lines and phones: the roles that answer customers and review orders need them.
    assert {r for r in ROLES if "orders.view_contact_details" in _group_perms(r)} == {
        "customer_service",
        "reviewer",
        "data_steward",
    }


@pytest.mark.parametrize("role", sorted(ROLES))
def test_no_role_group_can_manage_user_accounts_or_groups(db, role):
    assert not [p for p in _group_perms(role) if p.startswith("auth.")]


def test_sync_roles_is_idempotent(db):
    before = {role: _group_perms(role) for role in ROLES}

    first = sync_roles(apps=global_apps)
    after_first = {role: _group_perms(role) for role in ROLES}
    second = sync_roles(apps=global_apps)
    after_second = {role: _group_perms(role) for role in ROLES}

    assert first == second
    assert after_first == after_second == before
    assert Group.objects.filter(name__in=ROLES).count() == len(ROLES)
    assert first == {role: len(perms) for role, perms in before.items()}


def test_sync_roles_removes_a_permission_granted_to_a_group_by_hand(db):
    group = Group.objects.get(name="customer_service")
    group.permissions.add(
        Permission.objects.get(content_type__app_label="orders", codename="manage_payment")
    )

    sync_roles(apps=global_apps)

    assert "orders.manage_payment" not in _group_perms("customer_service")


def test_sync_roles_recreates_a_deleted_group(db):
    Group.objects.filter(name="reviewer").delete()

    sync_roles(apps=global_apps)

    assert _group_perms("reviewer") == _expand(ROLES["reviewer"])


# --- customer service: never touches payments or credit terms -----------------------------------
def test_customer_service_cannot_capture_a_payment(cs_user):
    order = make_order()
    before = _snapshot(order.pk)

    with pytest.raises(PermissionRefused) as refused:
        order_transition(order_id=order.pk, transition="capture_payment", actor=_as(cs_user))

    assert refused.value.code == "permission_denied"
    assert "orders.manage_payment" in str(refused.value)
    assert _snapshot(order.pk) == before


@pytest.mark.parametrize("transition", ["authorize_payment", "capture_payment"])
def test_customer_service_cannot_move_a_pending_payment(cs_user, transition):
    order = make_order()

    with pytest.raises(PermissionRefused):
        order_transition(order_id=order.pk, transition=transition, actor=_as(cs_user))

    order.refresh_from_db()
    assert order.payment_status == "pending"


def test_customer_service_cannot_refund(cs_user):
    order = advance(make_order(), "capture_payment")
    before = _snapshot(order.pk)

    with pytest.raises(PermissionRefused):
        order_transition(order_id=order.pk, transition="refund", actor=_as(cs_user))

    assert _snapshot(order.pk) == before


def test_customer_service_can_hold_and_cancel_on_request(cs_user):
    held = make_order()
    cancelled = make_order()

    order_transition(order_id=held.pk, transition="hold", actor=_as(cs_user), reason="asked")
    order_transition(order_id=cancelled.pk, transition="cancel", actor=_as(cs_user), reason="asked")

    held.refresh_from_db()
    cancelled.refresh_from_db()
    assert held.status == "on_hold"
    assert cancelled.status == "cancelled"
    assert held.events.order_by("id").last().actor_id == cs_user.username


def _order_change_page(client, user, order):
    client.force_login(user)
    response = client.get(reverse("admin:orders_order_change", args=[order.pk]))
    assert response.status_code == 200
    return response


def test_admin_offers_customer_service_no_payment_buttons(client, cs_user):
    order = make_order()

    response = _order_change_page(client, cs_user, order)

    offered = {t["name"] for t in response.context["transitions"]}
    assert offered == {"hold", "cancel"}
    html = response.content.decode()
    for name in PAYMENT_TRANSITIONS:
        assert f'name="transition" value="{name}"' not in html
    assert 'name="transition" value="hold"' in html


def test_admin_offers_finance_the_payment_buttons_but_not_cancel(client, finance_user):
    order = make_order()

    response = _order_change_page(client, finance_user, order)

    offered = {t["name"] for t in response.context["transitions"]}
    assert {"authorize_payment", "capture_payment"} <= offered
    assert not offered & {"cancel", "hold", "send_to_review", "approve_review"}
    assert 'name="transition" value="capture_payment"' in response.content.decode()


def _post_admin_transition(client, user, order, **data):
    client.force_login(user)
    url = reverse("admin:orders_order_transition", args=[order.pk])
    response = client.post(url, data, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:orders_order_change", args=[order.pk])
    return [(m.level, m.message) for m in response.context["messages"]]


def test_a_hand_made_admin_post_cannot_capture_payment_for_customer_service(client, cs_user):
    order = make_order()
    before = _snapshot(order.pk)

    shown = _post_admin_transition(
        client, cs_user, order, transition="capture_payment", expected_state="pending"
    )

    assert [level for level, _ in shown] == [messages.ERROR]
    assert "permission" in shown[0][1].lower()
    assert _snapshot(order.pk) == before


def test_admin_transition_post_applies_an_allowed_transition(client, cs_user):
    order = make_order()

    shown = _post_admin_transition(
        client, cs_user, order, transition="hold", expected_state="validated", reason="call back"
    )

    assert [level for level, _ in shown] == [messages.SUCCESS]
    order.refresh_from_db()
    assert order.status == "on_hold"
    assert order.status_reason == "call back"
    last = order.events.order_by("id").last()
    assert (last.action, last.actor_kind, last.actor_id) == ("hold", "user", cs_user.username)


def test_admin_transition_post_with_a_stale_expected_state_changes_nothing(client, finance_user):
    order = advance(make_order(), "authorize_payment")
    before = _snapshot(order.pk)

    shown = _post_admin_transition(
        client, finance_user, order, transition="capture_payment", expected_state="pending"
    )

    assert [level for level, _ in shown] == [messages.ERROR]
    assert _snapshot(order.pk) == before


# --- finance: money, not the order's lifecycle --------------------------------------------------
def test_finance_can_capture_and_then_refund_a_payment(finance_user):
    order = make_order()

    order_transition(order_id=order.pk, transition="capture_payment", actor=_as(finance_user))
    order_transition(order_id=order.pk, transition="refund", actor=_as(finance_user))

    order.refresh_from_db()
    assert order.payment_status == "refunded"
    assert order.refunded_total == order.total
    actions = list(order.events.filter(actor_kind="user").values_list("action", "actor_id"))
    # The money goes back as a refund record (source person), then the payment state follows.
    assert actions == [("capture_payment", "fred"), ("refund", "fred"), ("refund_recorded", "fred")]
    assert order.refunds.get().source == "person"


def test_finance_can_refund_part_of_a_payment(finance_user):
    order = advance(make_order(), "capture_payment")

    order_transition(
        order_id=order.pk, transition="refund_partially", actor=_as(finance_user), amount="5.00"
    )

    order.refresh_from_db()
    assert order.payment_status == "partially_refunded"
    assert order.refunded_total == Decimal("5.00")


def test_finance_can_capture_through_the_admin(client, finance_user):
    order = make_order()

    shown = _post_admin_transition(
        client, finance_user, order, transition="capture_payment", expected_state="pending"
    )

    assert [level for level, _ in shown] == [messages.SUCCESS]
    order.refresh_from_db()
    assert order.payment_status == "paid"


def test_finance_cannot_cancel_an_order(finance_user):
    order = make_order()
    before = _snapshot(order.pk)

    with pytest.raises(PermissionRefused):
        order_transition(
            order_id=order.pk, transition="cancel", actor=_as(finance_user), reason="no"
        )

    assert _snapshot(order.pk) == before


def test_finance_cannot_approve_a_review(finance_user, reviewer_user):
    order = make_order()
    order_transition(order_id=order.pk, transition="send_to_review", actor=_as(reviewer_user))
    before = _snapshot(order.pk)

    with pytest.raises(PermissionRefused):
        order_transition(order_id=order.pk, transition="approve_review", actor=_as(finance_user))

    assert _snapshot(order.pk) == before
    assert before[0] == "in_review"


# --- reviewer -----------------------------------------------------------------------------------
def test_reviewer_can_send_an_order_to_review_and_approve_it(reviewer_user):
    order = make_order()

    order_transition(order_id=order.pk, transition="send_to_review", actor=_as(reviewer_user))
    order.refresh_from_db()
    assert order.status == "in_review"
    order_transition(order_id=order.pk, transition="approve_review", actor=_as(reviewer_user))

    order.refresh_from_db()
    assert order.status == "validated"
    assert order.review_approved_at is not None
    actions = list(order.events.filter(actor_kind="user").values_list("action", "actor_id"))
    assert actions == [("send_to_review", "rita"), ("approve_review", "rita")]


def test_reviewer_cannot_capture_a_payment(reviewer_user):
    order = make_order()

    with pytest.raises(PermissionRefused):
        order_transition(order_id=order.pk, transition="capture_payment", actor=_as(reviewer_user))


def test_customer_service_cannot_approve_a_review(cs_user, reviewer_user):
    order = make_order()
    order_transition(order_id=order.pk, transition="send_to_review", actor=_as(reviewer_user))

    with pytest.raises(PermissionRefused):
        order_transition(order_id=order.pk, transition="approve_review", actor=_as(cs_user))


# --- credit terms in the admin ------------------------------------------------------------------
def _customer_form(customer, **changes) -> dict[str, str]:
    data = {
        "email": customer.email,
        "name": customer.name,
        "phone": customer.phone,
        "account_type": customer.account_type,
        "company_name": customer.company_name,
        "net_terms_days": str(customer.net_terms_days),
        "credit_limit": str(customer.credit_limit),
        "credit_currency": customer.credit_currency,
        "_save": "Save",
    }
    if customer.net_terms_approved:
        data["net_terms_approved"] = "on"
    data.update(changes)
    return data


def test_customer_service_sees_the_credit_limit_read_only_in_the_admin(client, cs_user):
    customer = BusinessCustomerFactory()
    client.force_login(cs_user)

    response = client.get(reverse("admin:orders_customer_change", args=[customer.pk]))

    assert response.status_code == 200
    form_fields = response.context["adminform"].form.fields
    assert "credit_limit" not in form_fields
    assert "net_terms_approved" not in form_fields
    assert "name" in form_fields  # CS does edit the customer record itself
    assert 'name="credit_limit"' not in response.content.decode()


def test_customer_service_cannot_change_a_credit_limit_by_posting_it(client, cs_user):
    customer = BusinessCustomerFactory(credit_limit=Decimal("10000"))
    client.force_login(cs_user)

    response = client.post(
        reverse("admin:orders_customer_change", args=[customer.pk]),
        _customer_form(customer, name="Renamed Buyer", credit_limit="999999", net_terms_days="90"),
    )

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.name == "Renamed Buyer"  # the save went through...
    assert customer.credit_limit == Decimal("10000")  # ...without the credit terms
    assert customer.net_terms_days == 30


def test_finance_can_change_a_credit_limit_in_the_admin(client, finance_user):
    customer = BusinessCustomerFactory(credit_limit=Decimal("10000"))
    client.force_login(finance_user)
    url = reverse("admin:orders_customer_change", args=[customer.pk])

    assert "credit_limit" in client.get(url).context["adminform"].form.fields
    response = client.post(url, _customer_form(customer, credit_limit="2500.00"))

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.credit_limit == Decimal("2500.00")


def test_a_user_without_a_role_gets_no_order_admin(client, db):
    nobody = make_user("nobody")
    order = make_order()
    client.force_login(nobody)

    response = client.get(reverse("admin:orders_order_change", args=[order.pk]))

    assert response.status_code == 403


def test_ops_cannot_issue_an_api_token_for_another_user_nor_read_any_key(client, ops_user):
    from django.urls import reverse
    from rest_framework.authtoken.models import Token

    boss = make_user("boss", superuser=True)
    existing = Token.objects.create(user=boss)
    client.force_login(ops_user)

    response = client.post(reverse("admin:authtoken_tokenproxy_add"), {"user": boss.pk})
    assert response.status_code == 403
    assert Token.objects.filter(user=boss).count() == 1

    listing = client.get(reverse("admin:authtoken_tokenproxy_changelist"))
    assert listing.status_code == 200
    assert existing.key not in listing.content.decode()
    assert "…" + existing.key[-4:] in listing.content.decode()
