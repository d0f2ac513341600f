"""Per-process counts of SQL statements and Celery task runs, for ``bench/e2e.py``.

``bench/settings.py`` installs this when ``BENCH_COUNT_DIR`` is set (never in the product's own
settings): every database connection of the process gets an execute wrapper that counts its
statements, and ``task_prerun`` counts the tasks it runs, by name. A daemon thread writes the
counts to ``<BENCH_COUNT_DIR>/<kind>-<pid>.json`` twice a second (``kind`` is the Procfile
process name from ``BENCH_PROCESS_KIND``), so the benchmark can add them up across gunicorn
workers and Celery pool processes, which it cannot reach otherwise. A forked pool process
starts from zero: what its parent counted is in the parent's file.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_pid = 0
_queries = 0
_tasks: Counter[str] = Counter()


def _this_process() -> None:
    """Reset the counts and start the writer once per process (after a fork, in the child)."""
    global _pid, _queries
    if _pid == os.getpid():
        return
    with _lock:
        if _pid == os.getpid():
            return
        _pid, _queries = os.getpid(), 0
        _tasks.clear()
        threading.Thread(target=_writer, name="bench-counters", daemon=True).start()


def _writer() -> None:
    folder = Path(os.environ["BENCH_COUNT_DIR"])
    kind = os.environ.get("BENCH_PROCESS_KIND", "other")
    pid = os.getpid()
    target = folder / f"{kind}-{pid}.json"
    last: tuple[int, int] | None = None
    while pid == os.getpid():
        with _lock:
            state = {"kind": kind, "pid": pid, "queries": _queries, "tasks": dict(_tasks)}
        key = (_queries, sum(_tasks.values()))
        if key != last:
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            tmp.replace(target)
            last = key
        time.sleep(0.5)


INLINE = " (inline)"


def _count_query(execute: Callable[..., Any], sql: str, params: Any, many: bool,
                 context: dict[str, Any]) -> Any:  # fmt: skip
    global _queries
    _this_process()
    with _lock:
        _queries += 1
    return execute(sql, params, many, context)


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _count_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count_query)


def _on_task(task: Any = None, **kwargs: Any) -> None:
    _this_process()
    name = getattr(task, "name", "?")
    request = getattr(task, "request", None)
    if request is not None and request.is_eager:
        # Run in-process by the worker that rang it (config.tasks, INLINE_FOLLOW_UPS): a task
        # run without a message of its own.
        name += INLINE
    with _lock:
        _tasks[name] += 1


def install() -> None:
    """Count this process's statements and task runs (see the module docstring)."""
    from celery import signals
    from django.db.backends.signals import connection_created

    Path(os.environ["BENCH_COUNT_DIR"]).mkdir(parents=True, exist_ok=True)
    connection_created.connect(_on_connection, weak=False)
    signals.task_prerun.connect(_on_task, weak=False)


def collect(folder: Path) -> dict[str, dict[str, Any]]:
    """Counts per process kind: ``{"web": {"queries": n, "tasks": Counter}, ...}``."""
    totals: dict[str, dict[str, Any]] = {}
    for path in folder.glob("*.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):  # being replaced right now: read it next time
            continue
        entry = totals.setdefault(state["kind"], {"queries": 0, "tasks": Counter()})
        entry["queries"] += state["queries"]
        entry["tasks"].update(state["tasks"])
    return totals


_PROJECT = str(Path(__file__).resolve().parent.parent)


def _project_frames(depth: int = 4) -> list[str]:
    """The innermost ``depth`` frames of the project's own code (not the venv, not bench/)."""
    frames = []
    for frame in reversed(traceback.extract_stack()[:-3]):
        name = frame.filename
        if name.startswith(_PROJECT) and "/.venv/" not in name and "/bench/" not in name:
            module = name[len(_PROJECT) + 1 :].removesuffix(".py").replace("/", ".")
            frames.append(f"{module}:{frame.name}:{frame.lineno}")
            if len(frames) == depth:
                break
    return frames


class captured_sql:  # noqa: N801 (used as a context manager, like the one of django.test)
    """The SQL statements one block runs on ``connection``, through an execute wrapper (the
    benchmarks' own; runtime code and bench scripts never import django.test)."""

    def __init__(self, connection: Any, *, origins: bool = False) -> None:
        self.connection = connection
        self.statements: list[str] = []
        #: With ``origins``: per statement, the project's frames that issued it (innermost
        #: first, as ``module:function:line``), to find where a statement comes from.
        self.origins: list[list[str]] | None = [] if origins else None
        self._wrapper: Any = None

    def _record(self, execute: Callable[..., Any], sql: str, params: Any, many: bool,
                context: Any) -> Any:  # fmt: skip
        self.statements.append(sql)
        if self.origins is not None:
            self.origins.append(_project_frames())
        return execute(sql, params, many, context)

    def __enter__(self) -> captured_sql:
        self._wrapper = self.connection.execute_wrapper(self._record)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._wrapper.__exit__(*exc)
