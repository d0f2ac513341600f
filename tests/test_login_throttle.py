"""Sign-in throttling: repeated failures lock one username from one address out for a while."""

from django.core.management import call_command
from django.urls import reverse

from tests.factories import make_user

LOGIN = "/admin/login/"


def attempt(client, username, password):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})


def test_five_failed_sign_ins_lock_the_account_from_that_address(client, db, settings):
    make_user("carol", "customer_service")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = attempt(client, "carol", "wrong")
        assert response.status_code == 200  # the form again, with its error
        assert "Please enter the correct username and password" in response.content.decode()

    locked = attempt(client, "carol", "wrong")
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    # Even the right password is refused while the lock lasts.
    assert attempt(client, "carol", "pw-carol").status_code == 429


def test_a_lock_on_one_user_leaves_other_users_alone(client, db, settings):
    make_user("carol", "customer_service")
    make_user("fred", "finance")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "carol", "wrong")
    response = attempt(client, "fred", "pw-fred")
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_a_success_resets_the_count_and_axes_reset_lifts_a_lock(client, db, settings):
    make_user("carol", "customer_service")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "carol", "wrong")
    assert attempt(client, "carol", "pw-carol").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "carol", "wrong").status_code == 200

    attempt(client, "carol", "wrong")
    assert attempt(client, "carol", "pw-carol").status_code == 429
    call_command("axes_reset", verbosity=0)
    assert attempt(client, "carol", "pw-carol").status_code == 302


def test_ops_can_see_and_lift_lockouts_in_the_admin(client, db, settings):
    ops = make_user("otto", "ops_admin")
    assert ops.has_perm("axes.delete_accessattempt")
    client.force_login(ops)
    assert client.get(reverse("admin:axes_accessattempt_changelist")).status_code == 200
