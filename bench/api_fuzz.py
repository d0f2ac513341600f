"""API fuzzing by hand: schemathesis (``st run``) against a live gunicorn on loopback, once per
role and once without a token, with many more cases than ``tests/test_api_fuzz.py``.

It makes a database of its own (a SQLite file in a temporary folder unless ``DATABASE_URL`` is
set: then that database is migrated and filled), loads the demo data (``setup_demo``), issues a
token per role (``drf_create_token`` for the demo users), starts gunicorn with eager tasks (the
moves run the real pipeline) and runs every phase (examples, coverage, fuzzing, stateful) with
the checks not_a_server_error, status_code_conformance, content_type_conformance,
response_schema_conformance and response_headers_conformance. Prints each run's summary and
exits non-zero when any run found a failure. Usage:

    .venv/bin/python bench/api_fuzz.py [--max-examples 200] [--seed 1] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROLES = {"customer_service": "cs", "reviewer": "reviewer", "finance": "finance",
         "ops_admin": "ops", "anonymous": None}  # fmt: skip
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def manage(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout


def token_for(username: str, env: dict[str, str]) -> str:
    out = manage("drf_create_token", "--reset", username, env=env)
    match = re.search(r"Generated token (\w+)", out)
    if match is None:
        raise SystemExit(f"drf_create_token printed no token: {out!r}")
    return match.group(1)


def wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("gunicorn exited before it answered")
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def summary(output: str) -> str:
    """st's output from its failures (if any) or its summary on: operations, test cases."""
    lines = output.splitlines()
    for marker in ("FAILURES", "SUMMARY"):
        for i, line in enumerate(lines):
            if f"= {marker} =" in line:
                return "\n".join(lines[i:])
    return "\n".join(lines[-25:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=200, help="cases per operation")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--role",
        action="append",
        choices=list(ROLES),
        help="only this role (repeatable); default: every role and anonymous",
    )
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="api-fuzz-"))
    env = {**os.environ, "VAR_DIR": str(var), "DEBUG": "false", "CELERY_TASK_ALWAYS_EAGER": "true",
           "ALLOWED_HOSTS": "127.0.0.1", "DJANGO_SETTINGS_MODULE": "config.settings"}  # fmt: skip
    env.setdefault("DATABASE_URL", f"sqlite:///{var / 'db.sqlite3'}")
    manage("migrate", "--noinput", env=env)
    manage("setup_demo", env=env)
    tokens = {role: token_for(user, env) for role, user in ROLES.items() if user}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (var / "server.log").open("wb")  # the app logs every 4xx: kept out of the summary
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(args.workers), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    failed = []
    try:
        wait_until_up(base, server)
        print(f"Server {base}, data and server.log in {var}; {args.max_examples} cases per "
              f"operation, seed {args.seed}.", flush=True)  # fmt: skip
        for role in args.role or ROLES:
            command = [str(BIN / "st"), "run", f"{base}/api/schema/?format=json",
                       "--checks", CHECKS, "--max-examples", str(args.max_examples),
                       "--seed", str(args.seed), "--workers", "1", "--no-color",
                       "--generation-database", "none"]  # fmt: skip
            if role in tokens:
                command += ["--header", f"Authorization: Token {tokens[role]}"]
            started = time.monotonic()
            run = subprocess.run(command, cwd=var, capture_output=True, text=True, check=False)
            took = time.monotonic() - started
            print(f"\n=== {role}: exit {run.returncode}, {took:.0f} s", flush=True)
            print(summary(run.stdout), flush=True)
            if run.returncode != 0:
                failed.append(role)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    print("\nAll runs clean." if not failed else f"\nFailures in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
