"""Settings, all read from the environment (12-factor).

Defaults run a complete installation with no services: a SQLite file in ``var/`` and Celery on
kombu's filesystem transport (an embedded broker in ``var/celery-broker``). Production sets
``DATABASE_URL=postgres://...`` and ``CELERY_BROKER_URL=redis://...``; nothing else differs.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django_celery_beat.tzcrontab import TzAwareCrontab
from kombu import Queue

from config.logging import build_logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()


def _secret_key() -> str:
    """SECRET_KEY, SECRET_KEY_FILE, or a random key generated once per installation."""
    if env.str("SECRET_KEY", default=""):
        return env.str("SECRET_KEY")
    if env.str("SECRET_KEY_FILE", default=""):
        return Path(env.str("SECRET_KEY_FILE")).read_text().strip()
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "orders",
    "channels",
    "fulfillment",
    "reviews",
    "reconciliation",
    "demo",  # last: it builds demo data out of every app above
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.CorrelationIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed sign-ins for one username from
# one address, that pair is locked out for LOGIN_LOCKOUT_MINUTES (HTTP 429). `manage.py
# axes_reset` (or deleting the access attempt in the admin) lifts it early.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_VERBOSE = False  # its log lines name the username and IP address

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process, the worker and beat share one file: wait for the write lock instead of
    # failing, and take it at BEGIN so a read never has to be upgraded into a write mid-transaction.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    # A file (not :memory:) so that a worker process started by a test sees the test database;
    # one per test process, so two test runs on one checkout never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
else:
    # Persistent connections (checked before reuse): opening one costs more than most requests.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Behind PgBouncer in transaction mode (docs/deployment.md, "One machine"): a server-side
    # cursor (QuerySet.iterator()) cannot outlive the transaction the pooler lends a server for.
    # Prepared statements are off already: Django sets psycopg's prepare_threshold to None.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool(
        "DISABLE_SERVER_SIDE_CURSORS", default=False
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Time and locale: everything is stored in UTC; TIME_ZONE is only how the admin shows it. ---
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

LOGIN_URL = "admin:login"
SESSION_COOKIE_HTTPONLY = True


# --- Production: HTTPS behind a TLS proxy, and who may read the diagnostics -------------------
# The defaults serve `make run` (plain http on 127.0.0.1). docs/deployment.md lists every value
# production sets; under that environment `manage.py check --deploy` prints nothing (a test runs
# it with the block parsed out of the document).
def _proxy_ssl_header(value: list[str]) -> tuple[str, str] | None:
    """``HTTP_X_FORWARDED_PROTO,https`` -> the (header, value) pair that marks a request that
    reached the TLS proxy over https; empty -> None (no proxy is trusted)."""
    if not value:
        return None
    if len(value) != 2 or not value[0].startswith("HTTP_") or not value[1]:
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER is 'HTTP_<HEADER>,<value>', e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    return (value[0], value[1])


def _optional_secret(name: str) -> str:
    """``NAME``, or the contents of the file ``NAME_FILE`` names, or empty."""
    if env.str(name, default=""):
        return env.str(name)
    if env.str(f"{name}_FILE", default=""):
        return Path(env.str(f"{name}_FILE")).read_text().strip()
    return ""


SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Load balancer probes and the Prometheus scrape come over plain http from inside the network:
# answered as they are, never redirected (/metrics still needs its token, METRICS_TOKEN).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Only behind a proxy that sets this header itself (and drops a client's own): with it, a
# request the proxy received over https is https here, so redirects and absolute links (label
# downloads in the API) say https.
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(env.list("SECURE_PROXY_SSL_HEADER", default=[]))
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", default=False)
# Session and CSRF cookies only over https.
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# /metrics: with a token set, only `Authorization: Bearer <token>` or a signed-in staff user.
METRICS_TOKEN = _optional_secret("METRICS_TOKEN")
# /api/schema/ and /api/docs/: open to anyone (make run, demo) or to signed-in users and API
# tokens only (production). `check --deploy` warns while either is open.
API_DOCS_PUBLIC = env.bool("API_DOCS_PUBLIC", default=True)

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["config.api.ModelViewPermission"],
    "DEFAULT_PAGINATION_CLASS": "config.api.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "config.api_schema.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Order automation back office API",
    "DESCRIPTION": (
        "Orders, incidents and the rest of the back office. Authenticate with a token "
        "(`Authorization: Token <key>`, issued by `manage.py drf_create_token USER`) or a session."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed sidecar package: the docs work offline and without a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderStatus",
        "PaymentStatusEnum": "orders.models.PaymentStatus",
        "IncidentStatusEnum": "orders.models.IncidentStatus",
    },
}

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_DIR = Path(env.str("CELERY_BROKER_DIR", default=str(VAR_DIR / "celery-broker")))


def filesystem_broker_options(folder: Path) -> dict[str, object]:
    """Transport options of kombu's filesystem broker in ``folder`` (created if missing)."""
    for sub in ("queue", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(CELERY_BROKER_DIR)
else:
    # Long delays live in PostgreSQL (next attempt time), never in ETA beyond this timeout.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes every database connection before and after each task unless told
# to reuse them: a new PostgreSQL backend per task (fork, authentication, catalogue caches) cost
# the server more CPU than the task's own statements. A worker's connection now serves this many
# tasks; CONN_MAX_AGE and the health check still retire an old or broken one (config/celery.py).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "sync"
CELERY_TASK_QUEUES_NAMES = ("ingest", "fulfillment", "sync", "notify", "subscriptions")
CELERY_TASK_QUEUES = [Queue(name) for name in CELERY_TASK_QUEUES_NAMES]
CELERY_TASK_ROUTES = {
    "channels.*": {"queue": "ingest"},
    "orders.*": {"queue": "ingest"},
    "fulfillment.*": {"queue": "fulfillment"},
    "notify.*": {"queue": "notify"},
    "reviews.*": {"queue": "notify"},
    "reconciliation.*": {"queue": "sync"},
}
# Follow-ups a worker runs itself, right after the commit that rang them, when it serves their
# queue (config/tasks.py, `_follows_inline`): one broker hop less per order on ingest.
INLINE_FOLLOW_UPS = frozenset(env.list("INLINE_FOLLOW_UPS", default=["orders.order_validate"]))
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "channels-poll": {
        "task": "channels.poll_all",
        "schedule": env.float("POLL_INTERVAL_SECONDS", default=300.0),
    },
    "channels-refunds-poll": {
        "task": "channels.refunds_poll_all",
        "schedule": env.float("REFUNDS_POLL_INTERVAL_SECONDS", default=3600.0),
    },
    "channels-inbound-sweep": {
        "task": "channels.inbound_event_sweep",
        "schedule": env.float("INBOUND_SWEEP_SECONDS", default=60.0),
    },
    "orders-pipeline-sweep": {
        "task": "orders.order_pipeline_sweep",
        "schedule": env.float("PIPELINE_SWEEP_SECONDS", default=60.0),
    },
    "orders-allocate-sweep": {
        "task": "orders.order_allocate_sweep",
        "schedule": env.float("ALLOCATE_SWEEP_SECONDS", default=60.0),
    },
    "fulfillment-reservations-expire": {
        "task": "fulfillment.reservations_expire",
        "schedule": env.float("RESERVATION_EXPIRE_SWEEP_SECONDS", default=900.0),
    },
    "fulfillment-outbox-sweep": {
        "task": "fulfillment.outbox_sweep",
        "schedule": env.float("OUTBOX_SWEEP_SECONDS", default=60.0),
    },
    "fulfillment-orchestrate-sweep": {
        "task": "fulfillment.orchestrate_sweep",
        "schedule": env.float("ORCHESTRATE_SWEEP_SECONDS", default=120.0),
    },
    "channels-inbox-retention": {
        "task": "channels.inbound_raw_purge",
        "schedule": env.float("INBOX_RETENTION_SWEEP_SECONDS", default=24 * 3600.0),
    },
    "fulfillment-backorders-retry": {
        "task": "fulfillment.backorders_retry",
        "schedule": env.float("BACKORDER_RETRY_SECONDS", default=300.0),
    },
    "fulfillment-orders-close-due": {
        "task": "fulfillment.orders_close_due",
        "schedule": env.float("ORDERS_CLOSE_SWEEP_SECONDS", default=3600.0),
    },
    "fulfillment-tracking-poll": {
        "task": "fulfillment.tracking_poll",
        "schedule": env.float("TRACKING_POLL_INTERVAL_SECONDS", default=900.0),
    },
    "fulfillment-carrier-event-sweep": {
        "task": "fulfillment.carrier_event_sweep",
        "schedule": env.float("CARRIER_EVENT_SWEEP_SECONDS", default=60.0),
    },
    "fulfillment-carrier-inbox-retention": {
        "task": "fulfillment.carrier_event_raw_purge",
        "schedule": env.float("INBOX_RETENTION_SWEEP_SECONDS", default=24 * 3600.0),
    },
    # Monday 07:00 in TIME_ZONE: last week's leadership summary, built and emailed.
    "reviews-weekly-summary": {
        "task": "reviews.weekly_summary",
        "schedule": TzAwareCrontab(minute=0, hour=7, day_of_week=1, tz=ZoneInfo(TIME_ZONE)),
    },
    # Nightly: the current month's imports, matching and variance (reconciliation/tasks.py).
    "reconciliation-nightly": {
        "task": "reconciliation.reconcile_nightly",
        "schedule": crontab(hour=env.int("RECONCILE_NIGHTLY_HOUR_UTC", default=2), minute=30),
    },
}
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Ingestion ----------------------------------------------------------------------------
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=2 * 1024 * 1024)
# After a channel's webhook secret is replaced, the old one is still accepted this long.
WEBHOOK_SECRET_GRACE_HOURS = env.float("WEBHOOK_SECRET_GRACE_HOURS", default=72.0)
# How long a web process keeps an active channel it looked up by slug for the webhook ack path
# (channels.selectors). A save in this process forgets it at once; a save in another process
# is seen within this many seconds (a new secret at once: a failed signature re-reads). 0: off.
CHANNEL_CACHE_SECONDS = env.float("CHANNEL_CACHE_SECONDS", default=10.0)
# Django must let the body through so that our own limit answers (413 with a JSON body).
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES + 1024
INGEST_LEASE_SECONDS = env.int("INGEST_LEASE_SECONDS", default=300)
INGEST_MAX_ATTEMPTS = env.int("INGEST_MAX_ATTEMPTS", default=8)
INGEST_RETRY_BASE_SECONDS = env.int("INGEST_RETRY_BASE_SECONDS", default=30)
INGEST_SWEEP_AFTER_SECONDS = env.int("INGEST_SWEEP_AFTER_SECONDS", default=60)
# Channel REST APIs: (connect, read) timeouts, and the retry backoff for 429/5xx answers.
CHANNEL_HTTP_TIMEOUT = (env.float("CHANNEL_HTTP_CONNECT_TIMEOUT", default=3.0),
                        env.float("CHANNEL_HTTP_READ_TIMEOUT", default=15.0))  # fmt: skip
CHANNEL_HTTP_BACKOFF_FACTOR = env.float("CHANNEL_HTTP_BACKOFF_FACTOR", default=0.5)
POLL_INTERVAL_SECONDS = env.float("POLL_INTERVAL_SECONDS", default=300.0)
POLL_BACKFILL_DAYS = env.int("POLL_BACKFILL_DAYS", default=7)  # a new channel's first poll
# The outbound URL guard (config/integrations/urlguard.py), for every vendor call: https only,
# no loopback, private, link-local or metadata addresses. Plain http and loopback only with
# INTEGRATIONS_ALLOW_LOOPBACK_HTTP (tests, the demo's sandbox; never in production); hosts or
# networks (CIDR) that may be private anyway, comma separated: "wms.internal,10.20.0.0/16".
INTEGRATIONS_ALLOW_LOOPBACK_HTTP = env.bool("INTEGRATIONS_ALLOW_LOOPBACK_HTTP", default=False)
INTEGRATIONS_ALLOWED_HOSTS = env.list("INTEGRATIONS_ALLOWED_HOSTS", default=[])

# Orders left in `received` longer than this are re-enqueued by the sweeper (lost message).
ORDER_PIPELINE_STUCK_AFTER_SECONDS = env.int("ORDER_PIPELINE_STUCK_AFTER_SECONDS", default=120)

# --- Validation --------------------------------------------------------------------------------
# The business's own country and currency: "international" and order-value signals use them.
HOME_COUNTRY = env.str("HOME_COUNTRY", default="US")
SHOP_CURRENCY = env.str("SHOP_CURRENCY", default="USD")
# Stock: split an order across warehouses only when allowed; reservations expire after this.
ALLOCATION_ALLOW_SPLIT = env.bool("ALLOCATION_ALLOW_SPLIT", default=False)
RESERVATION_TTL_MINUTES = env.int("RESERVATION_TTL_MINUTES", default=60 * 24 * 7)
# Address: the offline check always runs; ADDRESS_VERIFIER adds online verifiers, comma
# separated, tried in order for the countries they serve ("", "usps", "canadapost").
ADDRESS_VERIFIER = env.str("ADDRESS_VERIFIER", default="")
ADDRESS_CACHE_SECONDS = env.int("ADDRESS_CACHE_SECONDS", default=7 * 24 * 3600)
ADDRESS_VERIFIER_TIMEOUT = (env.float("ADDRESS_VERIFIER_CONNECT_TIMEOUT", default=2.0),
                            env.float("ADDRESS_VERIFIER_READ_TIMEOUT", default=5.0))  # fmt: skip
ADDRESS_VERIFIER_RETRIES = env.int("ADDRESS_VERIFIER_RETRIES", default=1)
ADDRESS_VERIFIER_BACKOFF = env.float("ADDRESS_VERIFIER_BACKOFF", default=0.25)
USPS_API_BASE = env.str("USPS_API_BASE", default="")
USPS_CLIENT_ID = env.str("USPS_CLIENT_ID", default="")
USPS_CLIENT_SECRET = env.str("USPS_CLIENT_SECRET", default="")
CANADAPOST_API_BASE = env.str("CANADAPOST_API_BASE", default="")
CANADAPOST_KEY = env.str("CANADAPOST_KEY", default="")
# Payment: per channel kind, the methods consumer orders may pay with, as JSON, e.g.
# {"shopify": ["shopify_payments", "paypal"]}; a kind not named accepts every method.
ACCEPTED_PAYMENT_METHODS = env.json("ACCEPTED_PAYMENT_METHODS", default={})
# Duplicates: the same customer, items and total within this window holds the later order.
DUPLICATE_ORDER_WINDOW_MINUTES = env.int("DUPLICATE_ORDER_WINDOW_MINUTES", default=30)
# Reviews: a case is due this many hours after it opens.
REVIEW_SLA_HOURS = env.int("REVIEW_SLA_HOURS", default=4)
# The operations dashboard's "business uptime": an order meets its processing SLA when its first
# shipment label is bought within this many minutes of its receipt (reviews.dashboard).
PROCESSING_SLA_MINUTES = env.int("PROCESSING_SLA_MINUTES", default=60)

# --- Fulfillment -------------------------------------------------------------------------------
# Routing defaults (a rule's actions override them).
ROUTING_DEFAULT_CARRIER = env.str("ROUTING_DEFAULT_CARRIER", default="local")
ROUTING_DEFAULT_SERVICE_LEVEL = env.str("ROUTING_DEFAULT_SERVICE_LEVEL", default="ground")
ROUTING_DEFAULT_LANE = env.str("ROUTING_DEFAULT_LANE", default="fulfillment")
# Carriers: the built-in local carrier renders its own labels; EasyPost when a key is set.
LOCAL_CARRIER_CURRENCY = env.str("LOCAL_CARRIER_CURRENCY", default="USD")
# The local carrier's tracking simulator: one scan per step after hand-over (0: the whole story
# at once), and the share of parcels with a failed delivery attempt (then delivered or returned).
LOCAL_CARRIER_TRACKING_STEP_SECONDS = env.float("LOCAL_CARRIER_TRACKING_STEP_SECONDS",
                                                default=3600.0)  # fmt: skip
LOCAL_CARRIER_EXCEPTION_RATE = env.float("LOCAL_CARRIER_EXCEPTION_RATE", default=0.1)
EASYPOST_API_KEY = env.str("EASYPOST_API_KEY", default="")
EASYPOST_API_BASE = env.str("EASYPOST_API_BASE", default="https://api.easypost.com/v2")
EASYPOST_TIMEOUT = (env.float("EASYPOST_CONNECT_TIMEOUT", default=3.0),
                    env.float("EASYPOST_READ_TIMEOUT", default=30.0))  # fmt: skip
EASYPOST_RETRIES = env.int("EASYPOST_RETRIES", default=2)
EASYPOST_BACKOFF = env.float("EASYPOST_BACKOFF", default=0.5)
# Stripe (finance imports: payouts and balance transactions through the official SDK).
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
STRIPE_TIMEOUT = (env.float("STRIPE_CONNECT_TIMEOUT", default=3.0),
                  env.float("STRIPE_READ_TIMEOUT", default=30.0))  # fmt: skip
STRIPE_RETRIES = env.int("STRIPE_RETRIES", default=2)
STRIPE_BACKOFF = env.float("STRIPE_BACKOFF", default=0.5)
EASYPOST_LABEL_FORMAT = env.str("EASYPOST_LABEL_FORMAT", default="PDF")
EASYPOST_CUSTOMS_SIGNER = env.str("EASYPOST_CUSTOMS_SIGNER", default="")
EASYPOST_EEL_PFC = env.str("EASYPOST_EEL_PFC", default="NOEEI 30.37(a)")
# Downstream systems (the outbox). ERP: "filedrop" (CSV batches into ERP_DROP_DIR), "netsuite",
# or "" (off); WMS: "local" (pick tasks in the admin), "rest", or ""; notifications: "email",
# plus "twilio" for SMS once configured.
ERP_TARGET = env.str("ERP_TARGET", default="filedrop")
WMS_TARGET = env.str("WMS_TARGET", default="local")
NOTIFY_TARGETS = env.list("NOTIFY_TARGETS", default=["email"])
ERP_DROP_DIR = env.str("ERP_DROP_DIR", default="")  # "" means VAR_DIR/erp-drop
# The domain of our emails' Message-IDs; "" takes DEFAULT_FROM_EMAIL's.
OUTBOX_EMAIL_DOMAIN = env.str("OUTBOX_EMAIL_DOMAIN", default="")
NETSUITE_API_BASE = env.str("NETSUITE_API_BASE", default="")
NETSUITE_TOKEN = env.str("NETSUITE_TOKEN", default="")
NETSUITE_CUSTOMER_ID = env.str("NETSUITE_CUSTOMER_ID", default="")
WMS_API_BASE = env.str("WMS_API_BASE", default="")
WMS_API_TOKEN = env.str("WMS_API_TOKEN", default="")
TWILIO_API_BASE = env.str("TWILIO_API_BASE", default="https://api.twilio.com")
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")
TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID", default="")
DOWNSTREAM_HTTP_TIMEOUT = (env.float("DOWNSTREAM_CONNECT_TIMEOUT", default=3.0),
                           env.float("DOWNSTREAM_READ_TIMEOUT", default=15.0))  # fmt: skip
# Outbox retries: full-jitter exponential backoff, a circuit breaker per target, then dead.
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=8)
OUTBOX_BACKOFF_BASE_SECONDS = env.float("OUTBOX_BACKOFF_BASE_SECONDS", default=30.0)
OUTBOX_BACKOFF_CAP_SECONDS = env.float("OUTBOX_BACKOFF_CAP_SECONDS", default=3600.0)
OUTBOX_BREAKER_THRESHOLD = env.int("OUTBOX_BREAKER_THRESHOLD", default=5)
OUTBOX_BREAKER_COOLDOWN_SECONDS = env.float("OUTBOX_BREAKER_COOLDOWN_SECONDS", default=60.0)
OUTBOX_LEASE_SECONDS = env.int("OUTBOX_LEASE_SECONDS", default=300)
# A dispatch message also takes other due actions of its lane, up to this many in all (one
# transaction for their leases, one for their successes); 1 dispatches one action per message.
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=50)
# Hand a parcel to the carrier as soon as its label is bought (no warehouse scan-out).
FULFILLMENT_AUTO_SHIP = env.bool("FULFILLMENT_AUTO_SHIP", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="orders@orderdesk.invalid")

# --- Feedback loop (fulfillment.tracking) ------------------------------------------------------
# Tell the customer when a parcel has a delivery problem (a failed attempt, a lost parcel).
NOTIFY_ON_DELIVERY_EXCEPTION = env.bool("NOTIFY_ON_DELIVERY_EXCEPTION", default=True)
# Replenishment (fulfillment.replenishment): sales velocity is units shipped per day over this
# many trailing days; a (SKU, warehouse) without its own ReorderPoint row uses these defaults.
REPLENISHMENT_VELOCITY_DAYS = env.int("REPLENISHMENT_VELOCITY_DAYS", default=28)
REPLENISHMENT_DEFAULT_LEAD_TIME_DAYS = env.int("REPLENISHMENT_DEFAULT_LEAD_TIME_DAYS", default=7)
REPLENISHMENT_DEFAULT_SAFETY_DAYS = env.int("REPLENISHMENT_DEFAULT_SAFETY_DAYS", default=3)
# Availability feed (fulfillment.availability, /feeds/availability.json and .jsonld): off while
# the token is empty; `Authorization: Bearer <token>` or `?token=`.
AVAILABILITY_FEED_TOKEN = _optional_secret("AVAILABILITY_FEED_TOKEN")
AVAILABILITY_FEED_CACHE_SECONDS = env.int("AVAILABILITY_FEED_CACHE_SECONDS", default=300)
# Handling and transit times are measured over this many trailing days, and only promised when
# at least AVAILABILITY_MIN_SAMPLES shipments (parcels) back the figure.
AVAILABILITY_WINDOW_DAYS = env.int("AVAILABILITY_WINDOW_DAYS", default=28)
AVAILABILITY_MIN_SAMPLES = env.int("AVAILABILITY_MIN_SAMPLES", default=10)
# A SKU with no confirmed stock is BackOrder (orders for it are taken and backordered, as the
# allocator does) rather than OutOfStock; 0 when the shop does not take backorders.
AVAILABILITY_BACKORDERS = env.bool("AVAILABILITY_BACKORDERS", default=True)
# CRM (fulfillment.crm): crm_update actions on the order's milestones, one per target:
# "webhook" (a signed Standard Webhooks POST) and/or "hubspot" (HubSpot CRM v3). [] is off.
CRM_TARGETS = env.list("CRM_TARGETS", default=[])
CRM_WEBHOOK_URL = env.str("CRM_WEBHOOK_URL", default="")
CRM_WEBHOOK_SECRET = env.str("CRM_WEBHOOK_SECRET", default="")
# Off by default: the receiver gets ids and amounts; the email only when it needs it to match.
CRM_WEBHOOK_INCLUDE_EMAIL = env.bool("CRM_WEBHOOK_INCLUDE_EMAIL", default=False)
HUBSPOT_API_BASE = env.str("HUBSPOT_API_BASE", default="https://api.hubapi.com")
HUBSPOT_TOKEN = env.str("HUBSPOT_TOKEN", default="")
HUBSPOT_PIPELINE = env.str("HUBSPOT_PIPELINE", default="default")
# Our milestone -> the HubSpot deal stage id (the default pipeline's stock stage ids).
HUBSPOT_DEAL_STAGES = env.json("HUBSPOT_DEAL_STAGES", default={
    "received": "appointmentscheduled", "shipped": "contractsent",
    "delivered": "closedwon", "returned": "closedlost", "cancelled": "closedlost",
})  # fmt: skip
# The deal property that holds our order key (unique, created once in HubSpot: docs/feedback.md).
HUBSPOT_ORDER_KEY_PROPERTY = env.str("HUBSPOT_ORDER_KEY_PROPERTY", default="orderdesk_order_key")
# Post-purchase (fulfillment.postpurchase): a review request this long after delivery, to
# customers who accept marketing email. SURVEY_URL: a format string with {order_number}
# (and {order_id}); "" links to nothing but the shop's name.
SURVEY_DELAY_HOURS = env.float("SURVEY_DELAY_HOURS", default=72.0)
SURVEY_URL = env.str("SURVEY_URL", default="")
# Closing (fulfillment.closing): days after the last parcel's delivery when no ReturnPolicy
# applies; the beat task closes delivered, settled orders whose window has passed.
RETURN_WINDOW_DAYS_DEFAULT = env.int("RETURN_WINDOW_DAYS_DEFAULT", default=30)
# The customer's order status page (/status/<token>/): where this site is reached from outside
# (links in emails and on the order's admin page), and how long a link keeps working.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
STATUS_LINK_MAX_AGE_DAYS = env.int("STATUS_LINK_MAX_AGE_DAYS", default=180)
# Carrier webhooks (POST /webhooks/carriers/easypost/): EasyPost's webhook secret (or
# EASYPOST_WEBHOOK_SECRET_FILE); without one every delivery is refused (401).
EASYPOST_WEBHOOK_SECRET = _optional_secret("EASYPOST_WEBHOOK_SECRET")
# The carriers' inbox: processing attempts before an event is quarantined, and the sweeper's
# grace before it re-enqueues an event still received (its message lost).
CARRIER_EVENT_MAX_ATTEMPTS = env.int("CARRIER_EVENT_MAX_ATTEMPTS", default=8)
CARRIER_EVENT_SWEEP_AFTER_SECONDS = env.int("CARRIER_EVENT_SWEEP_AFTER_SECONDS", default=60)
# Polling fallback: parcels on their way that heard nothing from their carrier for
# TRACKING_POLL_QUIET_SECONDS are asked (carrier track()), at most TRACKING_POLL_BATCH a round.
TRACKING_POLL_INTERVAL_SECONDS = env.float("TRACKING_POLL_INTERVAL_SECONDS", default=900.0)
TRACKING_POLL_QUIET_SECONDS = env.float("TRACKING_POLL_QUIET_SECONDS", default=4 * 3600.0)
TRACKING_POLL_BATCH = env.int("TRACKING_POLL_BATCH", default=200)

# --- Logging and error reporting ----------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = build_logging_config(level=LOG_LEVEL, fmt=LOG_FORMAT)

SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    from config.sentry import init_sentry

    init_sentry(
        dsn=SENTRY_DSN,
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    )

# Who gets the weekly leadership summary (comma separated); `weekly_summary --email` adds to it.
WEEKLY_SUMMARY_RECIPIENTS = env.list("WEEKLY_SUMMARY_RECIPIENTS", default=[])

# Default: customer emails land as files in var/emails (a mailbox to read, never a log line).
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "emails"))

# --- Privacy (docs/privacy.md) -----------------------------------------------------------------
# Customer data exports: outside MEDIA_ROOT, downloaded by ops_admin through the admin only.
PRIVACY_EXPORT_DIR = env.str("PRIVACY_EXPORT_DIR", default=str(VAR_DIR / "privacy-exports"))
PRIVACY_DATA_REQUEST_DUE_DAYS = env.int("PRIVACY_DATA_REQUEST_DUE_DAYS", default=30)
# Raw inbox bodies, headers and fetched payloads are blanked this many days after receipt once
# processed (0: kept forever); a daily beat task does it.
INBOX_RAW_RETENTION_DAYS = env.int("INBOX_RAW_RETENTION_DAYS", default=90)

# --- Fulfillment: routing, outbox, shipments (issue 9, engineer C) ------------------------------
# Prefix of every outbox idempotency key sent downstream (tell environments sharing a vendor apart).
OUTBOX_KEY_PREFIX = env.str("OUTBOX_KEY_PREFIX", default="")
# A retry due within this many seconds also gets a countdown message; later: the sweeper.
OUTBOX_COUNTDOWN_MAX_SECONDS = env.float("OUTBOX_COUNTDOWN_MAX_SECONDS", default=60.0)
# The sweeper leaves a just-written action this long for its own after-commit message to arrive.
OUTBOX_SWEEP_GRACE_SECONDS = env.float("OUTBOX_SWEEP_GRACE_SECONDS", default=30.0)

# --- Demo (issue 9, demo/ app) ------------------------------------------------------------------
# Where `setup_demo` reads the vendors' published sample payloads (the checkout's sibling).
DEMO_SAMPLES_DIR = BASE_DIR.parent / "shared" / "samples"

# --- Order sweepers: lost messages (issue 10 item 5, engineer I) -------------------------------
# Orders left in `validated` longer than this (a review approval's allocate message was lost)
# are re-enqueued for allocation by `orders.order_allocate_sweep`.
ORDER_ALLOCATE_STUCK_AFTER_SECONDS = env.int("ORDER_ALLOCATE_STUCK_AFTER_SECONDS", default=120)
