"""One path for every state change of every app: lock the row, refuse a move that is not allowed
with a reason a person can act on, apply the django-fsm transition, save it under the
concurrency guard, and write its audit event on the order's timeline in the same transaction.

Orders, incidents, review cases, reservations, shipments and outbound actions all move through
``transition_run`` (after ``row_lock``, or ``transition_apply`` for both). The guard is two-fold:
the row is locked with ``select_for_update`` before it is read, and every model with an FSM field
takes ``ConcurrentTransitionMixin``, whose ``save()`` updates only if the state is still the one
that was read; a save that loses anyway (a row read without a lock, or SQLite, which has no row
locks) raises ``ConcurrentTransition``, which this module turns into the domain's ``StaleState``.

This module is the audit trail's writer too (``order_event_record``), so that the lowest app
owns both and ``orders.services`` can build on it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import structlog
from django.core.exceptions import ObjectDoesNotExist
from django.db import models, transaction
from django.db.models import QuerySet
from django_fsm import ConcurrentTransition, FSMField

from config import correlation
from orders.actors import Actor
from orders.errors import NotFound, PermissionRefused, StaleState, TransitionRefused
from orders.models import FSMRowMixin, OrderEvent

M = TypeVar("M", bound=models.Model)
log = structlog.get_logger(__name__)

# What a refused condition means, in words a person can act on (condition function -> words).
# Apps add their conditions' messages here; an unlisted condition is named by its function.
CONDITION_MESSAGES: dict[Callable[..., bool], str] = {}


# --- audit ------------------------------------------------------------------------------------
def order_event_record(
    *,
    order_id: int,
    action: str,
    actor: Actor,
    field: str = "",
    from_state: str = "",
    to_state: str = "",
    data: Mapping[str, Any] | None = None,
    correlation_id: str = "",
) -> OrderEvent:
    """Append one audit event for an order (call inside the transaction that made the change)."""
    row = _event_row(
        Audit(order_id=order_id, action=action, field=field, from_state=from_state,
              to_state=to_state, data=data or {}, correlation_id=correlation_id),
        order_id, actor=actor, fallback_cid=correlation.get(),
    )  # fmt: skip
    if not _held([row]):
        row.save(force_insert=True)
    return row


def _event_row(
    event: Audit, order_id: int, *, actor: Actor, fallback_cid: str, at: datetime | None = None
) -> OrderEvent:
    """The ``OrderEvent`` row of ``event`` on order ``order_id`` (unsaved): the one place that
    spells its fields."""
    return OrderEvent(
        **({"at": at} if at is not None else {}),
        order_id=order_id,
        actor_kind=actor.kind,
        actor_id=actor.id,
        action=event.action,
        field=event.field,
        from_state=event.from_state,
        to_state=event.to_state,
        correlation_id=event.correlation_id or fallback_cid,
        data=dict(event.data or {}),
    )


def order_events_record(
    events: list[Audit], *, actor: Actor, at: datetime | None = None
) -> list[OrderEvent]:
    """Append several audit events in one INSERT (call inside the transaction that made the
    changes). For a batch whose events are all known together (the outbox actions one
    transition writes, the results of one validation run): each row is exactly what
    ``audit_record`` would write for it, with its own time or, given ``at``, one time for all
    (their ids keep the order); events of rows without an order are skipped."""
    fallback = correlation.get()
    rows = [
        _event_row(event, event.order_id, actor=actor, fallback_cid=fallback, at=at)
        for event in events
        if event.order_id is not None
    ]
    if rows and not _held(rows):
        OrderEvent.objects.bulk_create(rows)
    return rows


# --- events of one transaction in one INSERT ---------------------------------------------------
# Inside ``atomic_audited`` an event is not inserted when it is recorded: it is held as a
# callback of Django's on-commit queue, which is what makes the hold exact. Django drops the
# callbacks registered inside a savepoint that rolls back (and all of them when the transaction
# does), so an event whose change was undone is undone with it, however deep the savepoint and
# whoever caught the error. When the outermost block ends without error, the events still held
# are inserted together, in the order they were recorded (ids and times as one by one), before
# its transaction or savepoint ends; a statement inside the block that touches the timeline
# (a hook reading an order's events) has them inserted first, so it sees what it would have.
_DEPTH = "orderdesk_audited_depth"
_FLUSHING = "orderdesk_audited_flushing"
EVENT_TABLE = OrderEvent._meta.db_table


class _HeldEvent:
    """An event waiting in the on-commit queue for its block's end (``_flush``). Run as a
    callback it would mean a block ended without writing it: it writes itself then (late, not
    lost) and says so; no code path is known to get there."""

    __slots__ = ("row", "tentative", "written")

    def __init__(self, row: OrderEvent) -> None:
        self.row = row
        self.written = False
        # Written by a read inside a savepoint opened after the event was recorded: that
        # savepoint may still roll the row back, so the block's end looks for it again.
        self.tentative = False

    def __call__(self) -> None:
        if not self.written:
            self.written = True
            log.error("order_event.written_after_commit", order_id=self.row.order_id,
                      action=self.row.action)  # fmt: skip
            self.row.save(force_insert=True)


def _held(rows: list[OrderEvent]) -> bool:
    """Hold ``rows`` for the enclosing ``atomic_audited`` block; False outside one."""
    connection = transaction.get_connection()
    if not getattr(connection, _DEPTH, 0) or not connection.in_atomic_block:
        return False
    for row in rows:
        transaction.on_commit(_HeldEvent(row), robust=True)
    return True


def _flush(connection: Any, *, final: bool) -> None:
    setattr(connection, _FLUSHING, True)  # its own statements pass the wrapper untouched
    try:
        _write_held(connection, final=final)
    finally:
        setattr(connection, _FLUSHING, False)


def _write_held(connection: Any, *, final: bool) -> None:
    """Insert every event still held (not dropped with a savepoint) in one statement.

    Before a read inside the block (``final`` False), an event recorded outside a savepoint that
    is open now is written inside it, where a rollback of that savepoint would undo the row but
    not the change it records: such an event stays in the queue, and the block's end
    (``final``) writes it again if its row is gone."""
    entries = [(sids, func) for sids, func, _robust in connection.run_on_commit
               if isinstance(func, _HeldEvent)]  # fmt: skip
    if final:
        tentative = [event for _sids, event in entries if event.tentative]
        if tentative:
            kept = set(OrderEvent.objects.filter(pk__in=[e.row.pk for e in tentative])
                       .values_list("pk", flat=True))  # fmt: skip
            for event in tentative:
                if event.row.pk not in kept:
                    event.row.pk, event.row._state.adding, event.written = None, True, False
    held = [(sids, event) for sids, event in entries if not event.written]
    if held:
        open_now = set(connection.savepoint_ids)
        for sids, event in held:
            event.written = True
            event.tentative = not final and not open_now <= sids
        OrderEvent.objects.bulk_create([event.row for _sids, event in held])
    # Out of the queue once written for good (in place: a caller may hold the list, as
    # tests do).
    connection.run_on_commit[:] = [
        entry for entry in connection.run_on_commit
        if not isinstance(entry[1], _HeldEvent) or (entry[1].tentative and not final)
    ]  # fmt: skip


def _timeline_read_first(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    """An execute wrapper of an audited block: a statement on the events table writes the
    held events before it runs."""
    connection = context["connection"]
    if EVENT_TABLE in sql and not getattr(connection, _FLUSHING, False):
        _flush(connection, final=False)
    return execute(sql, params, many, context)


@contextmanager
def atomic_audited(*, savepoint: bool = True) -> Iterator[None]:
    """``transaction.atomic(savepoint=...)`` whose order events are written in one INSERT as
    the outermost such block ends (see above)."""
    with transaction.atomic(savepoint=savepoint):
        connection = transaction.get_connection()
        depth = getattr(connection, _DEPTH, 0)
        setattr(connection, _DEPTH, depth + 1)
        try:
            if depth:
                yield
                return
            with connection.execute_wrapper(_timeline_read_first):
                yield
                # Not after an error: the block's atomic rolls back and drops what it held;
                # and not in a transaction already doomed (a caught database error).
                if not connection.needs_rollback:
                    _flush(connection, final=True)
        finally:
            setattr(connection, _DEPTH, depth)


@dataclass(frozen=True)
class Audit:
    """The event a transition writes on an order's timeline: ``order_event_record``'s fields.
    ``order_id`` None writes nothing (a row that belongs to no order, e.g. an outbox action)."""

    order_id: int | None
    action: str
    data: Mapping[str, Any] = field(default_factory=dict)
    field: str = ""
    from_state: str = ""
    to_state: str = ""
    correlation_id: str = ""


def audit_record(event: Audit | None, *, actor: Actor) -> OrderEvent | None:
    """Write ``event`` (nothing for None or a row without an order); for a change that is not
    a transition of its own, written with the same fields a transition's event would have."""
    if event is None or event.order_id is None:
        return None
    return order_event_record(
        order_id=event.order_id,
        action=event.action,
        actor=actor,
        field=event.field,
        from_state=event.from_state,
        to_state=event.to_state,
        data=event.data,
        correlation_id=event.correlation_id,
    )


# Builds the audit event from the row after the move and the state it was in before; the
# event's data often depends on what the transition set (an attempt count, a new status).
AuditOf = Callable[[M, str], Audit | None]


# --- refusing -----------------------------------------------------------------------------------
def _label(model: models.Model | type[models.Model]) -> str:
    name = str(model._meta.verbose_name)
    return name[:1].upper() + name[1:]


def fsm_fields(model: type[models.Model]) -> list[FSMField]:
    """The model's state fields."""
    return [f for f in model._meta.fields if isinstance(f, FSMField)]


def transitions_of(model: type[models.Model]) -> dict[str, str]:
    """Every transition method name of a model, mapped to the state field it moves."""
    names: dict[str, str] = {}
    for fsm_field in fsm_fields(model):
        for t in fsm_field.get_all_transitions(model):
            names[t.name] = fsm_field.name
    return names


def _field_of(instance: models.Model, name: str) -> str:
    method = getattr(instance, name, None)
    meta = getattr(method, "_django_fsm", None)
    if meta is None:
        raise ValueError(f"{type(instance).__name__}.{name} is not a django-fsm transition")
    fsm_field = meta.field
    return fsm_field if isinstance(fsm_field, str) else str(fsm_field.name)


def transition_permission_check(instance: models.Model, name: str, *, actor: Actor | None) -> None:
    """Raise ``PermissionRefused`` when ``actor`` is a person whose role may make transition
    ``name`` from none of its source states; do nothing for the system or a permitted person.

    Asked before anything about the row's state: a role without the permission gets the same
    answer (403) whatever state the row is in, so a refusal never tells it the state, and no
    state check (nor a condition's query) runs for it.
    """
    if actor is None or actor.user is None:
        return
    meta = getattr(instance, name)._django_fsm
    moves = list(meta.transitions.values())
    if moves and not any(t.has_perm(instance, actor.user) for t in moves):
        permission = next((t.permission for t in moves if isinstance(t.permission, str)), None)
        raise PermissionRefused(
            f"You do not have permission to {name.replace('_', ' ')} "
            f"({permission or 'no permission set'})"
        )


def transition_check(
    instance: models.Model,
    name: str,
    *,
    actor: Actor | None = None,
    say_field: bool = True,
) -> None:
    """Raise ``PermissionRefused`` (when ``actor`` is given and is a person without the
    transition's permission; asked first, see ``transition_permission_check``) or
    ``TransitionRefused`` (with the state it is in and the states it is allowed from, or the
    condition that is not met); do nothing when the move is allowed.

    ``say_field`` names the state field in the message ("its status is 'x'"), which a model
    with two machines (an order's status and payment) needs; without it: "it is 'x'".
    """
    field_name = _field_of(instance, name)
    transition_permission_check(instance, name, actor=actor)
    meta = getattr(instance, name)._django_fsm
    current = getattr(instance, field_name)
    verb = name.replace("_", " ")
    if not meta.has_transition(current):
        sources = sorted(
            str(s) for s in meta.transitions if isinstance(s, str) and s not in ("*", "+")
        )
        state = f"its {field_name.replace('_', ' ')} is" if say_field else "it is"
        raise TransitionRefused(
            f"Cannot {verb} {instance._meta.verbose_name} {instance.pk}: {state} '{current}' "
            f"(allowed from: {', '.join(sources)})"
        )
    t = meta.get_transition(current)
    for condition in t.conditions:
        if not condition(instance):
            reason = CONDITION_MESSAGES.get(condition, condition.__name__.replace("_", " "))
            raise TransitionRefused(f"Cannot {verb}: {reason}", code="condition_not_met")
    if actor is not None and actor.user is not None and not t.has_perm(instance, actor.user):
        raise PermissionRefused(
            f"You do not have permission to {verb} ({t.permission or 'no permission set'})"
        )


# --- moving -------------------------------------------------------------------------------------
def row_lock(queryset: QuerySet[M], pk: int, **lock: Any) -> M:
    """The row ``pk`` of ``queryset``, locked for this transaction (``select_for_update`` with
    ``lock``'s options); ``NotFound`` when it does not exist. A row with a state machine is
    remembered as read (``FSMRowMixin.row_remember``): its saves write only what changed."""
    try:
        row = queryset.select_for_update(**lock).get(pk=pk)
    except ObjectDoesNotExist:
        raise NotFound(f"{_label(queryset.model)} {pk} does not exist") from None
    if isinstance(row, FSMRowMixin):
        row.row_remember()
    return row


def transition_save(instance: M, **save: Any) -> M:
    """Save a moved row under the concurrency guard: another process that moved it first makes
    this a ``StaleState`` (the caller's view of the row is out of date), never a silent win."""
    try:
        instance.save(**save)
    except ConcurrentTransition:
        raise StaleState(
            f"{_label(instance)} {instance.pk} was changed by someone else at the same time: "
            "reload and try again"
        ) from None
    return instance


def transition_run(
    instance: M,
    name: str,
    *,
    actor: Actor,
    audit: AuditOf[M] | None,
    kwargs: Mapping[str, Any] | None = None,
    check_permission: bool = False,
    say_field: bool = True,
    checked: bool = False,
) -> M:
    """Apply transition ``name`` to a row the caller has locked, save it, and write its audit
    event; call inside the caller's transaction.

    Refuses first, before anything changes (``transition_check``; the actor's permission only
    with ``check_permission``), unless the caller has just run that check itself on this locked
    row (``checked``: conditions may query, so they are not run twice). ``kwargs`` go to the
    transition method. ``audit`` builds the event from the moved row and the state before (None:
    the caller's own next step audits the change, as a shipment's does through its order's
    transition). A lost race raises
    ``StaleState``; the caller's transaction then rolls back whatever it wrote before.
    """
    if not transaction.get_connection().in_atomic_block:
        # The move and its audit event commit together or not at all.
        raise RuntimeError("transition_run must run inside the caller's transaction")
    if not checked:
        transition_check(
            instance, name, actor=actor if check_permission else None, say_field=say_field
        )
    before = str(getattr(instance, _field_of(instance, name)))
    getattr(instance, name)(**dict(kwargs or {}))
    transition_save(instance)
    if audit is not None:
        audit_record(audit(instance, before), actor=actor)
    return instance


def transition_apply(
    queryset: QuerySet[M],
    pk: int,
    name: str,
    *,
    actor: Actor,
    audit: AuditOf[M] | None,
    kwargs: Mapping[str, Any] | None = None,
    check_permission: bool = False,
    say_field: bool = True,
) -> M:
    """``row_lock`` then ``transition_run``: lock row ``pk``, move it, audit it."""
    instance = row_lock(queryset, pk)
    return transition_run(
        instance, name, actor=actor, audit=audit, kwargs=kwargs,
        check_permission=check_permission, say_field=say_field,
    )  # fmt: skip
