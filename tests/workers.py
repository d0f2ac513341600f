"""Real Celery worker processes for tests: started against the test database and the
configured broker (Redis in CI's PostgreSQL pass, the filesystem broker otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection

from config.celery import app


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def purge_queues() -> None:
    with app.connection_for_write() as conn:
        for queue in settings.CELERY_TASK_QUEUES_NAMES:
            try:
                conn.default_channel.queue_purge(queue)  # type: ignore[attr-defined]
            except Exception:  # a queue the broker has never seen: nothing to purge
                pass


def process_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process the tests start (a worker, a web server): production
    settings on the test database and broker, tasks sent to the broker; ``env`` overrides."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_BROKER_DIR": str(settings.CELERY_BROKER_DIR),
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "INTEGRATIONS_ALLOW_LOOPBACK_HTTP": "1",  # the tests' vendors listen on 127.0.0.1
        **(env or {}),
    }


def start_worker(
    log: Path,
    *,
    name: str = "test",
    concurrency: int = 1,
    pool: str = "",
    env: dict[str, str] | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """A worker on every queue, its output in ``log``; ``env`` adds or overrides settings."""
    environment = process_env(env)
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker",
        "--queues", ",".join(settings.CELERY_TASK_QUEUES_NAMES),
        "--concurrency", str(concurrency), "--loglevel", "INFO",
        "--without-gossip", "--without-mingle", "--hostname", f"{name}-{uuid.uuid4().hex[:8]}@%h",
        *(["--pool", pool] if pool else []),
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=environment, start_new_session=new_session,
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """Warm shutdown; killed if it has not stopped within 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
