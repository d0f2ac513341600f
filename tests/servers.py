"""Real HTTP servers for tests: gunicorn or Django's runserver on a free loopback port, against
the test database and broker (the same environment as tests/workers.py gives a worker)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from tests.workers import process_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    kind: str, log: Path, *, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``kind`` "gunicorn" (one sync worker) or "runserver"; returns (process, port) once the
    port accepts connections. Tasks are sent to the broker, never run in the server."""
    port = free_port()
    environment = process_env(env)
    if kind == "gunicorn":
        command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind",
                   f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", "-"]  # fmt: skip
    else:
        command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    proc = subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=environment, stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"{kind} did not listen within 60 s: {log.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
