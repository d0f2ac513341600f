"""Celery entry points of the outbox: ids in, one service call, safe to repeat.

``fulfillment.outbox_dispatch`` is a doorbell: the row decides whether anything happens (the
lease lets one worker through; a duplicate or late message is a no-op). ``acks_late`` with the
project's ``task_reject_on_worker_lost`` redelivers a message whose worker died; the attempt it
used is already counted in the row, so a poison message ends dead, never in a loop.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from fulfillment.outbox import services as outbox


@shared_task(name="fulfillment.outbox_dispatch", acks_late=True)
def outbox_dispatch_task(action_id: int, lane: str = "", **kwargs: Any) -> str:
    """Perform one outbox action if it is due, and other due actions of its lane with it
    (``actions_dispatch``; ``lane``: the lane the doorbell rang on, absent from older
    messages; kwargs: tolerate newer callers)."""
    return outbox.actions_dispatch(action_ids=[action_id], lane=lane)[action_id]


@shared_task(name="fulfillment.outbox_dispatch_batch", acks_late=True)
def outbox_dispatch_batch_task(
    action_ids: list[int], lane: str = "", **kwargs: Any
) -> dict[str, str]:
    """Perform several outbox actions of one lane (the actions one transition wrote), and
    other due actions of the lane with them (``actions_dispatch``: each action keeps its own
    lease, call and outcome). A redelivered message repeats only what is still due."""
    outcomes = outbox.actions_dispatch(action_ids=action_ids, lane=lane)
    return {str(pk): outcomes[pk] for pk in action_ids}


@shared_task(name="fulfillment.outbox_sweep", acks_late=True)
def outbox_sweep_task(**kwargs: Any) -> int:
    """Beat: re-enqueue due actions whose message was lost, and those a dead worker left."""
    return outbox.outbox_sweep()
