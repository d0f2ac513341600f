"""The transactional outbox: side effects on downstream systems (ERP, WMS, notifications),
written in the transaction of the state change that causes them and performed after commit.

How an action travels (``OutboundAction``, see its state machine):

1. ``action_write`` inserts the row inside the caller's transaction. The idempotency key
   ``{OUTBOX_KEY_PREFIX}{order_id}:{kind}:{target}:v{version}`` and the unique
   (order, kind, target, version) make a duplicate trigger return the first row; the
   correlation id is deliberately not part of the key (two triggers of one effect carry
   different ones). After commit a doorbell message (``fulfillment.outbox_dispatch``) goes to
   the action's lane (Celery queue).
2. ``action_dispatch`` (``actions_dispatch`` of one action) leases the row in a short
   transaction (row lock with SKIP LOCKED, FSM ``start()``, ``attempts`` + 1,
   ``lease_expires_at``), commits, calls the adapter with no
   transaction or lock held (pitfall 6), then records the outcome in a second short
   transaction with a compare-and-set on (status=in_flight, attempts=the attempt it leased): a
   worker whose lease ran out and was taken over cannot overwrite the newer attempt's outcome.
3. Success -> ``succeeded`` with a PII-free result. A retryable failure -> ``retry_scheduled``
   at now + full-jitter backoff; a short delay also gets a countdown message, a long one lives
   only in ``next_attempt_at`` (pitfall 3: no ETA beyond the broker's visibility timeout) and
   the sweeper picks it up. A non-retryable failure or the last attempt -> ``dead``, with a
   ``downstream_failed`` incident per action (a re-death bumps its count) and a one-click retry.
   A dispatch message does not come alone on a busy lane: ``actions_dispatch`` (what the
   task runs) takes the action it names plus up to ``OUTBOX_BATCH_SIZE`` other due actions
   of the same lane in that one lease transaction (one UPDATE for all), calls each adapter in
   turn, and records the successes together (one compare-and-set per row, one UPDATE, one
   INSERT of their events); a failure is recorded on its own exactly as above. The doorbells
   of the actions it took then find them done. Leases not yet used are renewed at half time.
4. ``outbox_sweep`` (beat) re-enqueues what is due and what a dead worker left in flight: the
   database is the truth, Redis only the doorbell (pitfalls 1 and 4).

Poison-message guard: ``attempts`` is counted in the database when the lease is taken, before
the downstream call. A message whose worker is SIGKILLed or OOM-killed mid-call (and that the
broker redelivers, pitfall 2) has used its attempt all the same; when its lease expires the
next dispatch records the lost attempt, and once ``max_attempts`` are used up the action goes
dead instead of being tried again, so no message can loop forever.

Circuit breaker, per target (``CircuitBreaker`` row, conditional updates only): after
``OUTBOX_BREAKER_THRESHOLD`` consecutive retryable failures it opens for
``OUTBOX_BREAKER_COOLDOWN_SECONDS``; due actions for that target are then rescheduled to the
breaker's ``retry_at`` without calling and without using an attempt. After the cooldown one
dispatch wins the half-open trial (a conditional UPDATE); its success closes the breaker, its
failure re-opens it for another cooldown.
"""

from __future__ import annotations

import random
import time
from collections import Counter as TallyCounter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, JSONField, Q, QuerySet, Value, When
from django.utils import timezone
from prometheus_client import Counter, Histogram

from config import correlation, metrics
from config.tasks import enqueue_on_commit
from fulfillment.downstream import DownstreamError, get_handler
from fulfillment.downstream.base import batch_orders
from fulfillment.models import (
    ActionKind,
    ActionStatus,
    OutboundAction,
)
from fulfillment.outbox.breaker import (
    breaker_cooldown,
    breaker_failure,
    breaker_gate,
    breaker_open_until,
    breaker_success,
)
from orders.actors import Actor
from orders.errors import InvalidInput, StaleState, TransitionRefused
from orders.models import IncidentCategory, Order, Severity
from orders.services import (
    incident_fingerprint,
    incident_raise,
    incidents_resolve,
    order_event_record,
)
from orders.transitions import (
    Audit,
    AuditOf,
    audit_record,
    order_events_record,
    row_lock,
    transition_run,
    transition_save,
)

log = structlog.get_logger(__name__)

DISPATCH_TASK = "fulfillment.outbox_dispatch"
DISPATCH_BATCH_TASK = "fulfillment.outbox_dispatch_batch"
ACTOR = Actor.system("outbox")

# Outcomes of action_dispatch.
SUCCEEDED = "succeeded"
RESCHEDULED = "rescheduled"  # failed, will be tried again (an attempt was used)
DEFERRED = "deferred"  # not called: the target's circuit breaker is open (no attempt used)
DEAD = "dead"
NOT_DUE = "not_due"
BUSY = "busy"  # leased by another worker right now
DONE = "done"  # already succeeded or dead: nothing to do
MISSING = "missing"
STALE = "stale"  # our lease was taken over meanwhile: our outcome is not recorded

DISPATCHES = Counter("outbox_dispatches", "Outbox dispatch outcomes", ["kind", "target", "outcome"])
CALL_SECONDS = Histogram(
    "outbox_call_seconds", "Time of one downstream call", ["kind", "target"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)  # fmt: skip

# Keys that must never be in a stored payload: adapters read personal data at send time.
PII_KEYS = frozenset({
    "email", "phone", "name", "first_name", "last_name", "full_name", "address",
    "shipping_address", "billing_address", "line1", "line2", "street", "postal_code", "zip",
    "to", "recipient",
})  # fmt: skip


# --- settings --------------------------------------------------------------------------------
def backoff_base() -> float:
    return float(settings.OUTBOX_BACKOFF_BASE_SECONDS)


def backoff_cap() -> float:
    return float(settings.OUTBOX_BACKOFF_CAP_SECONDS)


def lease_seconds() -> int:
    return int(settings.OUTBOX_LEASE_SECONDS)


# --- keys, backoff, enqueueing ---------------------------------------------------------------
def action_key(*, order_id: int | None, kind: str, target: str, version: int) -> str:
    """The action's idempotency key, sent downstream (see the module docstring)."""
    prefix = str(settings.OUTBOX_KEY_PREFIX)
    return f"{prefix}{order_id if order_id is not None else '-'}:{kind}:{target}:v{version}"


def backoff_seconds(
    retry: int, *, base: float | None = None, cap: float | None = None, rng: Any = random
) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**retry)], where
    ``retry`` is 0 before the first retry, 1 before the second... (AWS's "full jitter")."""
    base = backoff_base() if base is None else base
    cap = backoff_cap() if cap is None else cap
    ceiling = min(cap, base * 2 ** min(max(retry, 0), 32))
    return float(rng.uniform(0, ceiling))


def _dispatch_on_commit(action_id: int, lane: str, countdown: float | None = None) -> None:
    """Ring the doorbell for one action on its lane once the transaction commits (the row is
    the truth: a lost message is re-sent by the sweeper). The shared doorbell rings robustly
    with a broker (a broker that is down never fails the committed caller), routes a lane no
    worker consumes by the task's name (logged), and in eager mode runs the dispatch in-process
    unless it has a countdown (a retry's delay: the sweeper or process_outbox takes it)."""
    enqueue_on_commit(
        DISPATCH_TASK, queue=lane, countdown=countdown, action_id=action_id, lane=lane
    )


def _dispatch_batch_on_commit(action_ids: list[int], lane: str) -> None:
    """One doorbell for several actions of one lane (the actions one transition wrote): one
    broker message and one task instead of one each. Each action is still leased, performed
    and recorded on its own (``action_dispatch``), so one failing does not hold up the others
    and a lost message is re-sent per row by the sweeper. A single id rings the usual task."""
    if len(action_ids) == 1:
        _dispatch_on_commit(action_ids[0], lane)
        return
    enqueue_on_commit(DISPATCH_BATCH_TASK, queue=lane, action_ids=list(action_ids), lane=lane)


def _in_transaction() -> bool:
    """Inside a real transaction (a test case's wrapping transaction does not count)."""
    conn = transaction.get_connection()
    return conn.in_atomic_block and any(
        not getattr(block, "_from_testcase", False) for block in conn.atomic_blocks
    )


def _check_payload(payload: Mapping[str, Any], path: str = "") -> None:
    for key, value in payload.items():
        if str(key).lower() in PII_KEYS:
            raise InvalidInput(
                f"Outbox payloads hold ids, not personal data: drop {path}{key!s} "
                "(the adapter reads it from the order when it sends)",
                code="pii_in_payload",
            )
        if isinstance(value, Mapping):
            _check_payload(value, f"{path}{key}.")


# --- writing ---------------------------------------------------------------------------------
def action_write(
    *,
    order_id: int | None,
    kind: str,
    target: str,
    payload: Mapping[str, Any],
    lane: str = "sync",
    version: int = 1,
    correlation_id: str = "",
    max_attempts: int | None = None,
    not_before: datetime | None = None,
) -> OutboundAction:
    """Write one outbox action in the caller's transaction and dispatch it after commit.

    Idempotent: a duplicate trigger (same order, kind, target and version) returns the first
    row and writes nothing. The payload holds ids only (personal data is refused).

    ``not_before``: an action scheduled for later (a survey email days after delivery) lives
    in the database until then (``next_attempt_at``); no broker message waits for it, the
    sweeper sends its doorbell once it is due (pitfall 3: no ETA on the broker).
    """
    kind = str(kind)
    if kind not in ActionKind.values:
        raise InvalidInput(f"Unknown outbound action kind {kind!r}", code="unknown_kind")
    if not target:
        raise InvalidInput("An outbound action needs a target", code="target_required")
    payload = dict(payload or {})
    _check_payload(payload)
    key = action_key(order_id=order_id, kind=kind, target=target, version=version)
    same = Q(idempotency_key=key)
    if order_id is not None:
        same |= Q(order_id=order_id, kind=kind, target=target, version=version)
    with transaction.atomic():
        existing = OutboundAction.objects.filter(same).first()
        if existing is not None:
            return existing
        cid = correlation_id or correlation.get()
        if not cid and order_id is not None:
            cid = Order.objects.filter(pk=order_id).values_list("correlation_id", flat=True).first()
        try:
            # A savepoint: when a concurrent twin commits first, only this insert fails (the
            # unique constraints decide, never the read above) and we return the twin's row.
            with transaction.atomic():
                action = OutboundAction.objects.create(
                    order_id=order_id, kind=kind, target=target, version=version,
                    idempotency_key=key, lane=lane, payload=payload,
                    correlation_id=(cid or "")[:64],
                    max_attempts=max_attempts or int(settings.OUTBOX_MAX_ATTEMPTS),
                    next_attempt_at=not_before or timezone.now(),
                )  # fmt: skip
        except IntegrityError:
            twin = OutboundAction.objects.filter(same).first()
            if twin is None:
                raise  # not a duplicate: another constraint refused the row
            return twin
        if order_id is not None:
            order_event_record(
                order_id=order_id, action="outbound_queued", actor=ACTOR, to_state=action.status,
                data={"action_id": action.pk, "kind": kind, "target": target,
                      "version": version, "lane": lane,
                      **({"not_before": not_before.isoformat()} if not_before else {})},
                correlation_id=action.correlation_id,
            )  # fmt: skip
        log.info("outbox.queued", action_id=action.pk, order_id=order_id, kind=kind, target=target)
        if not_before is None or not_before <= timezone.now():
            _dispatch_on_commit(action.pk, lane)
    return action


def customer_notice_write(
    *, order_id: int, template: str, version: int, correlation_id: str, **ids: int
) -> list[OutboundAction]:
    """One customer notice (``template``, the rows it is about by id) per notification target,
    on the notify lane; idempotent per (order, target, version) like every action."""
    from fulfillment.downstream import NOTIFY_CUSTOMER, targets_for

    return [
        action_write(
            order_id=order_id,
            kind=NOTIFY_CUSTOMER,
            target=target,
            payload={"template": template, **ids},
            lane="notify",
            version=version,
            correlation_id=correlation_id,
        )  # fmt: skip
        for target in targets_for(NOTIFY_CUSTOMER)
    ]


@dataclass(frozen=True)
class ActionSpec:
    """One action for ``actions_write``: ``action_write``'s arguments, less the order's."""

    kind: str
    target: str
    payload: Mapping[str, Any]
    lane: str = "sync"
    version: int = 1


def actions_write(
    *, order_id: int, specs: Iterable[ActionSpec], correlation_id: str = ""
) -> tuple[list[OutboundAction], list[int]]:
    """Write the outbox actions one state change of an order causes, all at once; returns the
    rows (one per spec, in order) and the ids of those written now (none on a repeat).

    The same rows, keys, events and doorbells as ``action_write`` per spec, in fewer queries:
    one read of what is already there, one INSERT of the rest, one INSERT of their
    ``outbound_queued`` events, and after commit one doorbell per lane for the new ones
    (``DISPATCH_BATCH_TASK``). A concurrent twin (another trigger that inserted one of the rows
    first) makes the batch's INSERT fail in its savepoint; then each spec goes through
    ``action_write``, whose own savepoint returns the twin's row, so the result is the same.
    """
    specs = list(specs)
    if not specs:
        return [], []
    for spec in specs:
        if str(spec.kind) not in ActionKind.values:
            raise InvalidInput(f"Unknown outbound action kind {spec.kind!r}", code="unknown_kind")
        if not spec.target:
            raise InvalidInput("An outbound action needs a target", code="target_required")
        _check_payload(dict(spec.payload or {}))
    keys = [
        action_key(order_id=order_id, kind=str(s.kind), target=s.target, version=s.version)
        for s in specs
    ]
    # Outside a transaction this is one; inside the caller's, no savepoint is needed: an error
    # here is the caller's to roll back (the orchestration hook has its own savepoint).
    with transaction.atomic(savepoint=False):
        there = list(
            OutboundAction.objects.filter(Q(order_id=order_id) | Q(idempotency_key__in=keys))
        )
        by_key = {a.idempotency_key: a for a in there}
        by_identity = {(a.kind, a.target, a.version): a for a in there if a.order_id == order_id}

        def found(i: int) -> OutboundAction | None:
            s = specs[i]
            return by_key.get(keys[i]) or by_identity.get((str(s.kind), s.target, s.version))

        cid = (correlation_id or correlation.get())[:64]
        if not cid:
            cid = (
                Order.objects.filter(pk=order_id).values_list("correlation_id", flat=True).first()
                or ""
            )
        now = timezone.now()
        fresh = [
            OutboundAction(
                order_id=order_id,
                kind=str(s.kind),
                target=s.target,
                version=s.version,
                idempotency_key=keys[i],
                lane=s.lane,
                payload=dict(s.payload or {}),
                correlation_id=cid,
                max_attempts=int(settings.OUTBOX_MAX_ATTEMPTS),
                next_attempt_at=now,
            )  # fmt: skip
            for i, s in enumerate(specs)
            if found(i) is None
        ]
        if not fresh:
            return [a for a in map(found, range(len(specs))) if a is not None], []
        try:
            with transaction.atomic():
                OutboundAction.objects.bulk_create(fresh)
        except IntegrityError:
            # A twin won a row meanwhile: the one-by-one path sorts out which (rare).
            rows = [
                action_write(order_id=order_id, kind=s.kind, target=s.target, payload=s.payload,
                             lane=s.lane, version=s.version, correlation_id=cid)
                for s in specs
            ]  # fmt: skip
            return rows, [a.pk for a in rows if a.pk not in {b.pk for b in there}]
        mine = {a.idempotency_key: a for a in fresh}
        order_events_record(
            [
                Audit(
                    order_id=order_id,
                    action="outbound_queued",
                    to_state=a.status,
                    data={
                        "action_id": a.pk,
                        "kind": a.kind,
                        "target": a.target,
                        "version": a.version,
                        "lane": a.lane,
                    },
                    correlation_id=a.correlation_id,
                )  # fmt: skip
                for a in fresh
            ],
            actor=ACTOR,
        )
        lanes: dict[str, list[int]] = {}
        for a in fresh:
            lanes.setdefault(a.lane, []).append(a.pk)
            log.info("outbox.queued", action_id=a.pk, order_id=order_id, kind=a.kind,
                     target=a.target)  # fmt: skip
        for lane, ids in lanes.items():
            _dispatch_batch_on_commit(ids, lane)
    result: list[OutboundAction] = []
    for i in range(len(specs)):
        row = mine.get(keys[i]) or found(i)
        if row is not None:
            result.append(row)
    return result, [a.pk for a in fresh]


# --- dispatching -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Lease:
    action: OutboundAction
    attempt: int
    trial: bool  # this call is the circuit breaker's half-open trial
    # The breaker was closed with no failure counted when the lease was taken: a success has
    # nothing to reset, so its UPDATE is skipped (a failure counted meanwhile by another
    # worker stays counted: it came after ours began, and the next success resets it).
    clean: bool = False


def _due(now: datetime) -> Q:
    return Q(
        status__in=[ActionStatus.PENDING, ActionStatus.RETRY_SCHEDULED], next_attempt_at__lte=now
    )


def _lost(now: datetime) -> Q:
    """In flight, but the worker's lease ran out: it died or lost its message."""
    return Q(status=ActionStatus.IN_FLIGHT) & (
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True)
    )


def _take(
    action: OutboundAction, now: datetime, gate_of: Callable[[str], str | datetime]
) -> str | _Lease:
    """Decide, on a row this transaction has locked, whether this worker takes it: the lease
    (its ``start()`` applied, not yet saved: the caller saves it) or why not."""
    if action.status in (ActionStatus.SUCCEEDED, ActionStatus.DEAD):
        return DONE
    if action.status == ActionStatus.IN_FLIGHT:
        if action.lease_expires_at is not None and action.lease_expires_at > now:
            return BUSY
        # The worker that leased it is gone (killed, OOM, redeploy) or lost the message:
        # its attempt counts (poison guard); give up or schedule the next one now.
        action.last_error = (
            f"attempt {action.attempts} lost: its lease expired before an outcome was recorded"
        )
        _event(action, "outbound_attempt_lost", {"error": action.last_error})
        if action.attempts >= action.max_attempts:
            _give_up(action)
            return DEAD
        action.next_attempt_at = now
        # The loss is its event; the retry it schedules is taken by this very dispatch.
        transition_run(action, "schedule_retry", actor=ACTOR, audit=None)
        log.warning("outbox.lease_expired", action_id=action.pk, attempts=action.attempts)
    elif action.next_attempt_at > now:
        return NOT_DUE
    gate = gate_of(action.target)
    if isinstance(gate, datetime):
        action.next_attempt_at = gate  # no attempt used: nothing is called
        transition_save(action)
        return DEFERRED
    action.lease_expires_at = now + timedelta(seconds=lease_seconds())
    # Not audited: the outcome's event (succeeded, retry, dead) names the attempt.
    action.start()
    return _Lease(
        action=action, attempt=action.attempts, trial=gate == "trial", clean=gate == "clean"
    )


def _call(action: OutboundAction) -> tuple[dict[str, Any] | None, DownstreamError | None]:
    """The adapter's call: its result, or the error to record (a crash counts as retryable)."""
    started = time.perf_counter()
    result: dict[str, Any] | None = None
    error: DownstreamError | None = None
    try:
        result = dict(get_handler(action.kind, action.target).perform(action) or {})
    except DownstreamError as exc:
        error = exc
    except Exception as exc:
        # A bug or an unforeseen failure in an adapter: retried like an outage, then a
        # person. The log has the traceback; the stored error only the exception type.
        log.exception("outbox.adapter_crashed", action_id=action.pk, target=action.target)
        error = DownstreamError(
            f"unexpected {type(exc).__name__} in the {action.target} adapter", retryable=True
        )
    elapsed = time.perf_counter() - started
    CALL_SECONDS.labels(action.kind, action.target).observe(elapsed)
    metrics.observe(f"downstream:{action.target}", elapsed)
    return result, error


def action_dispatch(*, action_id: int) -> str:
    """Perform one due action on its downstream system; returns the outcome (``succeeded``,
    ``rescheduled``, ``deferred``, ``dead``, or a no-op: ``not_due``, ``busy``, ``done``,
    ``missing``, ``stale``). Safe to call any number of times, from any number of workers.
    ``actions_dispatch`` of this one action alone: the same lease, call and record."""
    return actions_dispatch(action_ids=[action_id], fill=False)[action_id]


# --- dispatching in batches ------------------------------------------------------------------
def batch_size() -> int:
    return max(1, int(settings.OUTBOX_BATCH_SIZE))


def actions_dispatch(
    *, action_ids: Iterable[int], fill: bool = True, lane: str = ""
) -> dict[int, str]:
    """Perform the given actions, and with ``fill`` up to ``OUTBOX_BATCH_SIZE`` in all with
    other due actions of their lanes (oldest first): what the doorbell of a busy lane finds
    waiting is done by whichever message comes first, and the later messages find their
    actions done (a no-op). Returns the outcome per action id (see ``action_dispatch``).

    The guarantees hold per action, in as few statements as the batch allows: all leases are
    taken in one transaction (rows locked with SKIP LOCKED, one breaker read per target, one
    UPDATE for all leases), each adapter is called with no transaction held, the successes are
    recorded together in one transaction (compare-and-set per row on its lease's attempt, one
    UPDATE, one INSERT of their ``outbound_succeeded`` events, one breaker reset per target),
    a failure is recorded on its own (``_record_failure``). Leases still waiting when half
    their time is gone are renewed, so a long batch never lets the sweeper take over an action
    it is about to call.

    ``lane``: the lane the message came on (its doorbell says it), so the given actions and the
    lane's other due ones are locked in one SELECT; without it the given actions are read first
    to learn their lanes.
    """
    if _in_transaction():
        raise RuntimeError("actions_dispatch must run outside a transaction (pitfall 6)")
    ids = list(dict.fromkeys(int(pk) for pk in action_ids))
    outcomes, leases = _lease_many(ids, room=batch_size() - len(ids) if fill else 0, lane=lane)
    done: list[tuple[_Lease, dict[str, Any]]] = []
    renew_at = time.monotonic() + lease_seconds() / 2
    waiting = list(leases)
    opened: dict[str, datetime] = {}
    # One read of the batch's orders, when an adapter first asks (downstream.batch_orders).
    with batch_orders(lease.action for lease in leases):
        while waiting:
            if time.monotonic() >= renew_at:
                # Renewed before the next call, never twice in a row: every renewal is followed
                # by a call, so the batch goes on even with a lease shorter than one call.
                waiting = _renew(waiting, outcomes)
                renew_at = time.monotonic() + lease_seconds() / 2
                if not waiting:
                    break
            lease = waiting.pop(0)
            action = lease.action
            if action.target in opened:
                # Its breaker opened during this batch: not called, and its attempt is given back.
                outcomes[action.pk] = _release(lease, opened[action.target])
                DISPATCHES.labels(action.kind, action.target, outcomes[action.pk]).inc()
                continue
            with correlation.bound(action.correlation_id or correlation.get()):
                result, error = _call(action)
                if error is None:
                    done.append((lease, result or {}))
                    continue
                outcomes[action.pk] = _record_failure(lease, error)
            DISPATCHES.labels(action.kind, action.target, outcomes[action.pk]).inc()
            if error.retryable and any(w.action.target == action.target for w in waiting):
                until = breaker_open_until(action.target)
                if until is not None:
                    opened[action.target] = until
    if done:
        outcomes.update(_record_successes(done))
        for lease, _result in done:
            action = lease.action
            DISPATCHES.labels(action.kind, action.target, outcomes[action.pk]).inc()
    return outcomes


def _locked_batch(ids: list[int], *, room: int, lane: str, now: datetime) -> list[OutboundAction]:
    """The rows of ``ids`` (by id) and up to ``room`` more due actions of their lanes (oldest
    first), locked with SKIP LOCKED. Knowing the lane, one SELECT: the named rows sort first, so
    the LIMIT never leaves one out; else the named rows first, then their lanes' due ones."""
    rows = OutboundAction.objects.select_for_update(skip_locked=True)
    if lane and room > 0:
        named = Case(When(pk__in=ids, then=Value(0)), default=Value(1))
        batch = list(
            rows.filter(Q(pk__in=ids) | (_due(now) & Q(lane=lane))).order_by(
                named, "next_attempt_at", "pk"
            )[: len(ids) + room]
        )
        wanted = set(ids)
        return sorted((a for a in batch if a.pk in wanted), key=lambda a: a.pk) + [
            a for a in batch if a.pk not in wanted
        ]
    locked = list(rows.filter(pk__in=ids).order_by("pk"))
    lanes = sorted({a.lane for a in locked})
    if room > 0 and lanes:
        locked += list(
            rows.filter(_due(now), lane__in=lanes)
            .exclude(pk__in=ids)
            .order_by("next_attempt_at", "pk")[:room]
        )
    return locked


def _lease_many(
    ids: list[int], *, room: int, lane: str = ""
) -> tuple[dict[int, str], list[_Lease]]:
    """``_lease`` for several actions in one transaction, plus up to ``room`` more due actions
    of the requested actions' lanes (``lane``, when the caller knows it: see ``_locked_batch``);
    returns the outcome of each action not taken and the leases, requested ones first."""
    now = timezone.now()
    outcomes: dict[int, str] = {}
    leases: list[_Lease] = []
    with transaction.atomic():
        locked = _locked_batch(ids, room=room, lane=lane, now=now)
        absent = set(ids) - {a.pk for a in locked}
        if absent:
            there = set(OutboundAction.objects.filter(pk__in=absent).values_list("pk", flat=True))
            outcomes.update({pk: BUSY if pk in there else MISSING for pk in absent})
        gates: dict[str, str | datetime] = {}

        def gate_of(target: str) -> str | datetime:
            if target not in gates:
                gates[target] = breaker_gate(target, now)
                return gates[target]
            if gates[target] == "trial":
                # One half-open trial per target: the rest of the batch waits for its verdict.
                gates[target] = now + timedelta(seconds=breaker_cooldown())
            return gates[target]

        for action in locked:
            taken = _take(action, now, gate_of)
            if isinstance(taken, _Lease):
                leases.append(taken)
            else:
                outcomes[action.pk] = taken
                if taken in (DEFERRED, DEAD):
                    DISPATCHES.labels(action.kind, action.target, taken).inc()
        if leases:
            # One UPDATE for every lease (the values ``_take`` gave each row), guarded like a
            # transition's save: a row moved by someone else since it was read makes the whole
            # lease a StaleState (rolled back).
            until = now + timedelta(seconds=lease_seconds())
            leased = [lease.action.pk for lease in leases]
            count = OutboundAction.objects.filter(
                pk__in=leased, status__in=[ActionStatus.PENDING, ActionStatus.RETRY_SCHEDULED]
            ).update(
                status=ActionStatus.IN_FLIGHT, attempts=F("attempts") + 1,
                lease_expires_at=until, updated_at=now,
            )  # fmt: skip
            if count != len(leased):
                raise _stale(leased)
    return outcomes, leases


def _stale(ids: list[int]) -> StaleState:
    """The refusal of a guarded UPDATE of several rows that moved fewer than it read, worded as
    ``transition_save`` words it for one row."""
    which = f"Outbound action {ids[0]} was" if len(ids) == 1 else f"Outbound actions {ids} were"
    return StaleState(f"{which} changed by someone else at the same time: reload and try again")


def _renew(leases: list[_Lease], outcomes: dict[int, str]) -> list[_Lease]:
    """Move the lease of actions not yet called on by another ``OUTBOX_LEASE_SECONDS``; one
    that is no longer ours (in flight with our attempt) is left to whoever took it."""
    until = timezone.now() + timedelta(seconds=lease_seconds())
    kept: list[_Lease] = []
    with transaction.atomic():
        ours = {
            (pk, attempts)
            for pk, attempts in OutboundAction.objects.select_for_update()
            .filter(pk__in=[lease.action.pk for lease in leases], status=ActionStatus.IN_FLIGHT)
            .values_list("pk", "attempts")
        }
        for lease in leases:
            if (lease.action.pk, lease.attempt) in ours:
                kept.append(lease)
            else:
                outcomes[lease.action.pk] = STALE
        OutboundAction.objects.filter(pk__in=[lease.action.pk for lease in kept]).update(
            lease_expires_at=until, updated_at=timezone.now()
        )
    return kept


def _locked_if_ours(lease: _Lease) -> OutboundAction | None:
    """The leased row, locked, if the lease still stands (in flight with the attempt it
    leased): the compare-and-set every outcome is recorded under. None: taken over."""
    return (
        OutboundAction.objects.select_for_update()
        .filter(pk=lease.action.pk, status=ActionStatus.IN_FLIGHT, attempts=lease.attempt)
        .first()
    )


def _release(lease: _Lease, until: datetime) -> str:
    """Give a leased action back without calling it (its target's breaker opened meanwhile):
    its attempt is not counted and it waits until ``until``, as a deferred dispatch does."""
    with transaction.atomic():
        action = _locked_if_ours(lease)
        if action is None:
            return STALE
        action.attempts -= 1
        action.next_attempt_at = until
        transition_run(action, "schedule_retry", actor=ACTOR, audit=None)
    return DEFERRED


# What recording a success reads of the locked rows.
SUCCESS_READS = ("id", "status", "attempts", "last_error", "order_id", "kind", "target",
                 "correlation_id")  # fmt: skip


def _record_successes(done: list[tuple[_Lease, dict[str, Any]]]) -> dict[int, str]:
    """``_record`` of several successful calls in one transaction (compare-and-set per row)."""
    outcomes: dict[int, str] = {}
    with transaction.atomic():
        # Only what the compare-and-set, the events and the incidents read (not the payload).
        rows = {
            a.pk: a
            for a in OutboundAction.objects.select_for_update()
            .only(*SUCCESS_READS)
            .filter(pk__in=[lease.action.pk for lease, _ in done], status=ActionStatus.IN_FLIGHT)
        }
        moved: list[OutboundAction] = []
        audits: list[Audit] = []
        reset: set[str] = set()
        failed_before: list[OutboundAction] = []
        for lease, result in done:
            action = rows.get(lease.action.pk)
            if action is None or action.attempts != lease.attempt:
                log.warning(
                    "outbox.stale_outcome", action_id=lease.action.pk, attempt=lease.attempt,
                    failed=False,
                )  # fmt: skip
                outcomes[lease.action.pk] = STALE
                continue
            action.result = result
            if action.last_error:
                failed_before.append(action)
            action.succeed()
            moved.append(action)
            event = _audit("outbound_succeeded", {"result": action.result})(action, "")
            if event is not None:
                audits.append(event)
            if not lease.clean:
                reset.add(action.target)
            log.info(
                "outbox.succeeded", action_id=action.pk, attempt=action.attempts,
                breaker_trial=lease.trial,
            )  # fmt: skip
            outcomes[action.pk] = SUCCEEDED
        if moved:
            # One UPDATE: what every success sets alike, and each row's own result.
            now = timezone.now()
            for action in moved:  # the rows as written (succeed() stamped each on its own)
                action.completed_at = action.updated_at = now
            results = [When(pk=a.pk, then=Value(a.result, output_field=JSONField()))
                       for a in moved]  # fmt: skip
            count = OutboundAction.objects.filter(
                pk__in=[a.pk for a in moved], status=ActionStatus.IN_FLIGHT
            ).update(
                status=ActionStatus.SUCCEEDED, result=Case(*results, output_field=JSONField()),
                completed_at=now, lease_expires_at=None, last_error="", updated_at=now,
            )  # fmt: skip
            if count != len(moved):  # guarded like a transition's save (the rows are locked)
                raise _stale([a.pk for a in moved])
            order_events_record(audits, actor=ACTOR)
        for target in sorted(reset):
            breaker_success(target)
        for action in failed_before:
            _resolve_incident(action)
    return outcomes


def _record_failure(lease: _Lease, error: DownstreamError) -> str:
    """Record a failed call, only if our lease still stands (compare-and-set): retry with
    backoff, or dead with its incident. Successes: ``_record_successes``."""
    now = timezone.now()
    with transaction.atomic():
        action = _locked_if_ours(lease)
        if action is None:
            log.warning(
                "outbox.stale_outcome", action_id=lease.action.pk, attempt=lease.attempt,
                failed=True,
            )  # fmt: skip
            return STALE
        # Never empty: a stored error is what tells a later success that it may have an
        # incident to resolve.
        action.last_error = str(error)[:2000] or f"{type(error).__name__} (no message)"
        if error.retryable:
            reopened_until = breaker_failure(action.target, now)
        elif not lease.clean:
            # The system answered (a 4xx): it is up, whatever it thought of this request.
            breaker_success(action.target)
            reopened_until = None
        if not error.retryable or action.attempts >= action.max_attempts:
            _give_up(action)
            return DEAD
        delay = max(backoff_seconds(action.attempts - 1), float(error.retry_after or 0))
        next_at = now + timedelta(seconds=delay)
        if reopened_until is not None and reopened_until > next_at:
            next_at = reopened_until  # no point waking up while the breaker is open
        action.next_attempt_at = next_at
        transition_run(
            action, "schedule_retry", actor=ACTOR,
            audit=_audit("outbound_retry_scheduled", {
                "error": action.last_error, "next_attempt_at": next_at.isoformat(),
            }),
        )  # fmt: skip
        countdown = (next_at - now).total_seconds()
        if countdown <= float(settings.OUTBOX_COUNTDOWN_MAX_SECONDS):
            _dispatch_on_commit(action.pk, action.lane, countdown=max(countdown, 0.001))
        log.warning(
            "outbox.retry_scheduled", action_id=action.pk, attempt=action.attempts,
            delay=round(countdown, 3), status=error.status,
        )  # fmt: skip
        return RESCHEDULED


def _audit(name: str, extra: Mapping[str, Any]) -> AuditOf[OutboundAction]:
    """The action's event on its order's timeline (none for an action without an order), read
    after the move: its new status and attempt count."""

    def audit(action: OutboundAction, _before: str) -> Audit:
        return Audit(
            order_id=action.order_id, action=name, to_state=action.status,
            data={"action_id": action.pk, "kind": action.kind, "target": action.target,
                  "attempt": action.attempts, **extra},
            correlation_id=action.correlation_id,
        )  # fmt: skip

    return audit


def _event(
    action: OutboundAction, name: str, extra: Mapping[str, Any], actor: Actor = ACTOR
) -> None:
    """An event that is no transition of its own (a lost attempt)."""
    audit_record(_audit(name, extra)(action, ""), actor=actor)


def _incident_key(action: OutboundAction) -> str:
    return f"outbound_action:{action.pk}"


def _incident_category(action: OutboundAction) -> str:
    """A channel that refused our tracking is its own category: customer service tells the
    store's owner, not the ERP team."""
    if action.kind == ActionKind.CHANNEL_TRACKING_SYNC:
        return IncidentCategory.CHANNEL_SYNC_FAILED
    return IncidentCategory.DOWNSTREAM_FAILED


def _give_up(action: OutboundAction) -> None:
    """Dead: a person decides (incident per action, bumped when it dies again). The incident
    is raised first so that the transition's event can name it."""
    incident = incident_raise(
        category=_incident_category(action),
        severity=Severity.HIGH,
        order_id=action.order_id,
        key=_incident_key(action),
        summary=(
            f"{action.get_kind_display()} via {action.target} failed after {action.attempts} "
            f"attempt(s): {action.last_error}"
        )[:255],
        details={"outbound_action_id": action.pk, "kind": action.kind, "target": action.target,
                 "attempts": action.attempts, "last_error": action.last_error,
                 "idempotency_key": action.idempotency_key},
    )  # fmt: skip
    transition_run(
        action, "give_up", actor=ACTOR,
        audit=_audit("outbound_dead", {"error": action.last_error, "incident_id": incident.pk}),
    )  # fmt: skip
    log.error(
        "outbox.dead", action_id=action.pk, order_id=action.order_id, kind=action.kind,
        target=action.target, attempts=action.attempts, incident_id=incident.pk,
    )  # fmt: skip


def _resolve_incident(action: OutboundAction) -> None:
    incidents_resolve(
        fingerprints=incident_fingerprint(
            category=_incident_category(action), order_id=action.order_id,
            key=_incident_key(action),
        ),
        actor=ACTOR, note=f"Outbound action {action.pk} succeeded on attempt {action.attempts}",
    )  # fmt: skip


# --- people ----------------------------------------------------------------------------------
@transaction.atomic
def action_retry_dead(*, action_id: int, actor: Actor) -> OutboundAction:
    """Revive a dead action (attempts start over) and dispatch it after commit; audited."""
    action = row_lock(OutboundAction.objects.all(), action_id)
    if action.status != ActionStatus.DEAD:
        raise TransitionRefused(
            f"Outbound action {action_id} is '{action.status}', not dead: only a dead action "
            "can be retried",
            code="not_dead",
        )
    transition_run(
        action, "revive", actor=actor,
        audit=_audit("outbound_retried", {"previous_error": action.last_error}),
    )  # fmt: skip
    log.info("outbox.retried", action_id=action.pk, actor_kind=str(actor.kind))
    _dispatch_on_commit(action.pk, action.lane)
    return action


# --- sweeping and draining -------------------------------------------------------------------
def outbox_sweep(*, now: datetime | None = None, limit: int = 500) -> int:
    """Re-send the doorbell for actions that are due but whose message is lost (Redis wiped,
    worker killed) or that were delayed in the database, and for in-flight ones whose lease
    expired. Returns how many were enqueued.

    A just-written action gets ``OUTBOX_SWEEP_GRACE_SECONDS`` (default 30) for its own
    after-commit message to arrive first, so a busy queue does not collect duplicates (which
    would be harmless: the lease lets one through).
    """
    now = now or timezone.now()
    grace = timedelta(seconds=float(settings.OUTBOX_SWEEP_GRACE_SECONDS))
    with transaction.atomic():
        # SKIP LOCKED: rows a worker is leasing right now, or another sweeper took, are left.
        rows = list(
            OutboundAction.objects.select_for_update(skip_locked=True)
            .filter(_due(now - grace) | _lost(now))
            .order_by("next_attempt_at", "pk")
            .values_list("pk", "lane")[:limit]
        )
        for action_id, lane in rows:
            _dispatch_on_commit(action_id, lane)
    if rows:
        log.info("outbox.swept", enqueued=len(rows))
    return len(rows)


def due_action_ids(*, now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Ids of actions due now (or left in flight by a dead worker), oldest first."""
    now = now or timezone.now()
    qs = (
        OutboundAction.objects.filter(_due(now) | _lost(now))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)
    )
    return list(qs[:limit] if limit else qs)


def outbox_drain(
    *,
    limit: int | None = None,
    progress: Callable[[list[int]], Iterable[int]] | None = None,
) -> dict[str, int]:
    """Dispatch every due action once, one by one, in this process (``process_outbox``).

    ``progress`` wraps the list of ids (``tqdm`` does). Returns counts per outcome, plus
    ``due`` (how many were tried) and ``dead_total`` (dead actions in the outbox afterwards).
    """
    ids = due_action_ids(limit=limit)
    tally: TallyCounter[str] = TallyCounter()
    for action_id in progress(ids) if progress is not None else ids:
        tally[action_dispatch(action_id=action_id)] += 1
    summary = {name: tally.get(name, 0) for name in (SUCCEEDED, RESCHEDULED, DEFERRED, DEAD)}
    summary["skipped"] = sum(tally.values()) - sum(summary.values())
    summary["due"] = len(ids)
    summary["dead_total"] = OutboundAction.objects.filter(status=ActionStatus.DEAD).count()
    return summary


# --- reads -----------------------------------------------------------------------------------
def outbound_action_list() -> QuerySet[OutboundAction]:
    """Actions for the API and the admin, newest first."""
    return OutboundAction.objects.select_related("order").order_by("-created_at", "-id")
