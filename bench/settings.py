"""Settings for the ingest benchmark's server: the product's, plus a baseline endpoint."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
LOGGING = {"version": 1, "disable_existing_loggers": True, "root": {"level": "WARNING"}}
