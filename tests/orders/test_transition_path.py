"""The one transition path (``orders.transitions``): refusals in words, a lost race between two
stale copies of a row is ``StaleState``, and the audit event is written in the transaction of
the move (or not at all). And the one incident API: a fingerprint, resolved by it."""

from __future__ import annotations

import pytest
from django.db import transaction

from orders.actors import Actor
from orders.errors import NotFound, PermissionRefused, StaleState, TransitionRefused
from orders.models import Incident, IncidentCategory, OrderEvent
from orders.services import incident_fingerprint, incident_raise, incidents_resolve
from orders.transitions import Audit, row_lock, transition_check, transition_run
from tests.factories import make_order

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("test")


def _audit(incident: Incident, before: str) -> Audit:
    return Audit(order_id=incident.order_id, action="incident_acknowledge", from_state=before,
                 to_state=incident.status, data={"incident_id": incident.pk})  # fmt: skip


def _incident(key: str = "k") -> Incident:
    order = make_order(pipeline=False)
    return incident_raise(category=IncidentCategory.OTHER, summary="s", order_id=order.pk, key=key)


def test_two_stale_copies_of_one_row_the_second_save_is_stale_and_writes_no_event():
    incident = _incident()
    first, second = Incident.objects.get(pk=incident.pk), Incident.objects.get(pk=incident.pk)
    transition_run(first, "acknowledge", actor=SYSTEM, audit=_audit, kwargs={"by": None})

    with pytest.raises(StaleState) as lost:
        with transaction.atomic():
            transition_run(second, "resolve", actor=SYSTEM, audit=_audit, kwargs={"by": None})

    assert str(lost.value) == (
        f"Incident {incident.pk} was changed by someone else at the same time: reload and try again"
    )
    assert Incident.objects.get(pk=incident.pk).status == "acknowledged"
    assert OrderEvent.objects.filter(order_id=incident.order_id,
                                     action="incident_acknowledge").count() == 1  # fmt: skip


def test_a_refusal_says_the_state_and_where_it_is_allowed_from():
    incident = _incident()
    transition_run(incident, "resolve", actor=SYSTEM, audit=None, kwargs={"by": None})
    with pytest.raises(TransitionRefused) as refused:
        transition_check(incident, "acknowledge")
    assert str(refused.value) == (
        f"Cannot acknowledge incident {incident.pk}: its status is 'resolved' (allowed from: open)"
    )
    with pytest.raises(TransitionRefused, match=r": it is 'resolved' \(allowed from: open\)"):
        transition_check(incident, "acknowledge", say_field=False)


def test_the_permission_is_checked_only_when_the_caller_asks(django_user_model):
    incident = _incident()
    clerk = django_user_model.objects.create_user(username="clerk")
    transition_check(incident, "acknowledge")  # no actor: no permission check
    with pytest.raises(PermissionRefused, match="orders.work_incident"):
        transition_check(incident, "acknowledge", actor=Actor.for_user(clerk))


def test_a_missing_row_is_not_found_in_words():
    with pytest.raises(NotFound, match="Incident 999999 does not exist"):
        row_lock(Incident.objects.all(), 999999)


def test_one_fingerprint_format_and_resolving_by_it_is_idempotent():
    a, b = _incident("a"), _incident("b")
    assert a.fingerprint == incident_fingerprint(category="other", order_id=a.order_id, key="a")
    assert incident_fingerprint(category="schema_invalid", order_id=None, key="x") == (
        "schema_invalid:-:x"
    )
    resolved = incidents_resolve(fingerprints={a.fingerprint, b.fingerprint}, actor=SYSTEM,
                                 note="fixed")  # fmt: skip
    assert sorted(i.pk for i in resolved) == sorted([a.pk, b.pk])
    assert {i.resolution_note for i in Incident.objects.all()} == {"fixed"}
    assert OrderEvent.objects.filter(action="incident_resolve").count() == 2
    assert incidents_resolve(fingerprints=a.fingerprint, actor=SYSTEM, note="again") == []
