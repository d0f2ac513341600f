"""Real races for tests: each call runs in its own thread with its own database connection,
all released together by a barrier (use with ``django_db(transaction=True)``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connection


def race(calls: list[Callable[[], Any]], *, timeout: float = 120) -> list[Any]:
    """Run the calls at once; return each one's result, or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = call()
        except Exception as exc:  # a refusal or a lost race is what such tests look at
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    close_old_connections()
    return results
