"""Test settings: the environment's database and broker, tasks in-process, fast hashing."""

from config.logging import build_logging_config
from config.settings import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = True
CHANNEL_HTTP_BACKOFF_FACTOR = 0  # retries against loopback servers need no waiting
INTEGRATIONS_ALLOW_LOOPBACK_HTTP = True  # vendors are pytest-httpserver on 127.0.0.1
ADDRESS_VERIFIER = ""  # offline address rules only, whatever the shell says
ADDRESS_VERIFIER_BACKOFF = 0
EASYPOST_API_KEY = ""  # carriers: local only unless a test configures EasyPost
EASYPOST_BACKOFF = 0
STRIPE_BACKOFF = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# JSON lines whatever LOG_FORMAT the shell has: tests parse them.
LOGGING = build_logging_config(level=LOG_LEVEL, fmt="json")  # noqa: F405

# A broker folder of the tests' own, so a `make run` worker on this checkout never takes a
# test's message (and a test worker never takes the demo's).
if CELERY_BROKER_URL.startswith("filesystem://"):  # noqa: F405
    CELERY_BROKER_DIR = VAR_DIR / "test-celery-broker"  # noqa: F405
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(CELERY_BROKER_DIR)  # noqa: F405
