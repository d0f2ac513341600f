"""Real races for tests: each call runs in its own thread with its own database connection,
all released together by a barrier (use with ``django_db(transaction=True)``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import close_old_connections, connection
from django.db.models import Model
from django.db.models.signals import pre_save


def race(
    calls: list[Callable[[], Any]], *, timeout: float = 120, at_most: int | None = None
) -> list[Any]:
    """Run the calls at once; return each one's result, or the exception it raised.
    ``at_most``: how many may hold a database session at the same moment (the server's
    connection limit), the rest queueing behind them once released."""
    barrier = threading.Barrier(len(calls))
    gate = threading.BoundedSemaphore(at_most or len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            with gate:
                try:
                    results[i] = call()
                finally:
                    connection.close()  # this thread's own session, before the next one
        except Exception as exc:  # a refusal or a lost race is what such tests look at
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    close_old_connections()
    return results


@contextmanager
def moved_meanwhile(
    model: type[Model], status: str, *, row: int | None = None
) -> Iterator[list[int]]:
    """Another session moves a ``model`` row to ``status`` between our read of it and our save
    (at the first save of such a row in the block), as a process that committed in between
    would: the instant a row lock, where one is taken, keeps others out of. Yields the ids of
    the rows it moved. The write is the row's own (a ``pre_save`` receiver's UPDATE), so it works
    on SQLite, which has no row locks, as on PostgreSQL.

    With ``row``, code that writes that row with a queryset UPDATE instead of a save (several
    rows in one statement) meets the same move: row ``row`` is moved just before the first
    UPDATE of the model's table, if that comes before a save."""
    moved: list[int] = []

    def move_row(pk: Any) -> None:
        moved.append(pk)
        model._default_manager.filter(pk=pk).update(status=status)

    def move(sender: type[Model], instance: Model, **kwargs: Any) -> None:
        if not moved and instance.pk is not None:
            move_row(instance.pk)

    update = f'UPDATE "{model._meta.db_table}"'

    def before_update(execute: Callable[..., Any], sql: str, params: Any, many: bool,
                      context: Any) -> Any:  # fmt: skip
        if row is not None and not moved and sql.lstrip().upper().startswith(update.upper()):
            move_row(row)
        return execute(sql, params, many, context)

    pre_save.connect(move, sender=model, weak=False)
    try:
        with connection.execute_wrapper(before_update):
            yield moved
    finally:
        pre_save.disconnect(move, sender=model)
