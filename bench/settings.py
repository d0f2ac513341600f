"""Settings for the ingest benchmark's server: the product's, plus a baseline endpoint."""

import os

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
LOGGING = {"version": 1, "disable_existing_loggers": True, "root": {"level": "WARNING"}}

if os.environ.get("BENCH_COUNT_DIR"):
    # bench/e2e.py: count SQL statements and task runs per process (bench/counters.py).
    from bench.counters import install as _install_counters

    _install_counters()
