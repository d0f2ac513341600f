"""Settings for the soak (``bench/soak.py``): the product's, with email over SMTP to the soak's
loopback receiver (the product reads no SMTP host or port from the environment)."""

import os

from config.settings import *  # noqa: F403

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = os.environ.get("SOAK_SMTP_HOST", "127.0.0.1")
EMAIL_PORT = int(os.environ.get("SOAK_SMTP_PORT", "25"))
EMAIL_TIMEOUT = 10
