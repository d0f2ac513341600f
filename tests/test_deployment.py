"""The production environment documented in docs/deployment.md: `check --deploy` is silent under
it, and behind a TLS proxy the site answers as https (redirects, HSTS, label links) while the
probes still answer plain http."""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from django.conf import settings as django_settings

from fulfillment.shipments import shipment_buy_label, shipments_create_for_order
from orders.actors import Actor
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, stock

BASE_DIR = Path(django_settings.BASE_DIR)
DEPLOYMENT_DOC = BASE_DIR / "docs" / "deployment.md"
HOST = "orders.example.com"
# What production sets: copied from the documented environment's settings module into the
# test's settings (everything `check --deploy` and the proxy handling read).
PRODUCTION_SETTINGS = (
    "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "SECURE_PROXY_SSL_HEADER",
    "USE_X_FORWARDED_HOST", "SECURE_SSL_REDIRECT", "SECURE_REDIRECT_EXEMPT",
    "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "METRICS_TOKEN", "API_DOCS_PUBLIC",
)  # fmt: skip


def documented_environment() -> dict[str, str]:
    """The variables of the first ```sh block in docs/deployment.md (KEY=value lines)."""
    text = DEPLOYMENT_DOC.read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "docs/deployment.md has no ```sh block with the production environment"
    found: dict[str, str] = {}
    for line in block.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"not KEY=value: {line!r}"
        found[name] = value
    return found


def with_secret_files(env: dict[str, str], folder: Path) -> dict[str, str]:
    """The documented environment with each ``*_FILE`` secret pointing at a file of the test's
    own (a test cannot read /run/secrets); every other value is used exactly as documented."""
    result = dict(env)
    for name in env:
        if name.endswith("_FILE"):
            path = folder / name.lower()
            path.write_text(secrets.token_urlsafe(50))
            result[name] = str(path)
    return result


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    return with_secret_files(documented_environment(), tmp_path)


def test_the_documented_environment_covers_every_production_security_variable():
    env = documented_environment()

    for name in ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
                 "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER", "SECURE_COOKIES",
                 "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "API_DOCS_PUBLIC"):  # fmt: skip
        assert name in env, name
    assert "METRICS_TOKEN" in env or "METRICS_TOKEN_FILE" in env
    # Each documented variable is explained in the document's table too.
    for name in env:
        assert f"`{name}`" in DEPLOYMENT_DOC.read_text(), name


def test_check_deploy_prints_nothing_under_the_documented_production_environment(
    production_env, tmp_path
):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **production_env}

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced).", (
        result.stdout + result.stderr
    )
    assert "WARNING" not in result.stderr and "security." not in result.stderr, result.stderr


def test_readme_links_the_deployment_document():
    assert "docs/deployment.md" in (BASE_DIR / "README.md").read_text()


# --- behind the TLS proxy -----------------------------------------------------------------------
def load_settings_module(env: dict[str, str], monkeypatch, var_dir: Path) -> ModuleType:
    """config/settings.py executed afresh under ``env`` (what a production process would load)."""
    for name in list(os.environ):
        if name.startswith(("SECURE_", "METRICS_TOKEN", "API_DOCS_")) or name in (
            "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "USE_X_FORWARDED_HOST", "SENTRY_DSN",
        ):  # fmt: skip
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VAR_DIR", str(var_dir))
    spec = importlib.util.spec_from_file_location("production_settings_probe",
                                                  BASE_DIR / "config" / "settings.py")  # fmt: skip
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def behind_the_proxy(production_env, monkeypatch, settings, tmp_path):
    """This test process's settings as the documented production environment sets them."""
    production = load_settings_module(production_env, monkeypatch, tmp_path / "var")
    for name in PRODUCTION_SETTINGS:
        # A name the settings module does not define keeps Django's default: production could
        # not set it.
        setattr(settings, name, getattr(production, name, getattr(django_settings, name, None)))
    return settings


HTTPS = {"HTTP_HOST": HOST, "HTTP_X_FORWARDED_PROTO": "https"}
PLAIN = {"HTTP_HOST": HOST}


@pytest.mark.django_db
@pytest.mark.pipeline  # the order must reach `allocated` to get a shipment
def test_label_links_in_the_api_are_https_behind_the_tls_proxy(
    behind_the_proxy, api_client, cs_user
):
    add_warehouse("A")
    stock("MUG", "A", 5)
    order = make_order(paid=True, lines=[("MUG", 1, "10.00")])
    [shipment] = shipments_create_for_order(order_id=order.pk, actor=Actor.system("test"))
    shipment_buy_label(shipment_id=shipment.pk, actor=Actor.system("test"))
    api_client.force_authenticate(cs_user)

    response = api_client.get("/api/v1/shipments/", **HTTPS)

    assert response.status_code == 200, response.content
    [row] = response.json()["results"]
    assert row["label_url"] == f"https://{HOST}/api/v1/shipments/{shipment.pk}/label/"
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    label = api_client.get(row["label_url"], **HTTPS)
    assert (label.status_code, label["Content-Type"]) == (200, "application/pdf")


@pytest.mark.django_db
def test_plain_http_is_redirected_to_https_except_the_probes_and_metrics(behind_the_proxy, client):
    redirected = client.get("/api/v1/orders/", **PLAIN)
    assert redirected.status_code == 301
    assert redirected["Location"] == f"https://{HOST}/api/v1/orders/"

    assert client.get("/healthz", **PLAIN).status_code == 200
    assert client.get("/readyz", **PLAIN).status_code == 200
    metrics = client.get("/metrics", **PLAIN)
    assert metrics.status_code == 401  # answered, not redirected; its token is still needed
    token = behind_the_proxy.METRICS_TOKEN
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}", **PLAIN).status_code == 200


@pytest.mark.django_db
def test_the_api_docs_need_a_login_and_cookies_are_secure_in_production(behind_the_proxy, client):
    assert client.get("/api/schema/", **HTTPS).status_code == 401
    assert behind_the_proxy.SESSION_COOKIE_SECURE and behind_the_proxy.CSRF_COOKIE_SECURE


# --- the one-machine topology (Procfile) --------------------------------------------------------
PROCFILE = BASE_DIR / "Procfile"


def procfile_processes() -> dict[str, list[str]]:
    """The Procfile as honcho reads it, each command split into words with its ``${X:-d}``
    defaults filled in (what the shell honcho starts would run)."""
    import shlex

    from honcho.environ import parse_procfile

    processes = parse_procfile(PROCFILE.read_text()).processes
    default = re.compile(r"\$\{(\w+):-([^}]*)\}")
    return {name: shlex.split(default.sub(lambda m: m.group(2), command))
            for name, command in processes.items()}  # fmt: skip


def option(words: list[str], *names: str) -> str:
    for name in names:
        if name in words:
            return words[words.index(name) + 1]
    raise AssertionError(f"none of {names} in {words}")


def test_the_procfile_runs_web_one_worker_per_queue_and_beat():
    processes = procfile_processes()

    assert "web" in processes and "beat" in processes
    workers = {name: words for name, words in processes.items() if words[:1] == ["celery"]
               and "worker" in words}  # fmt: skip
    served = [option(words, "--queues", "-Q") for words in workers.values()]
    # Every queue the settings declare has exactly one worker, named after it; none is unknown.
    assert sorted(served) == sorted(django_settings.CELERY_TASK_QUEUES_NAMES)
    for name, words in workers.items():
        assert option(words, "--queues", "-Q") == name
        assert option(words, "-A", "--app") == "config"
        assert int(option(words, "--concurrency", "-c")) >= 1
        assert int(option(words, "--prefetch-multiplier")) >= 1
        assert option(words, "--hostname", "-n").startswith(f"{name}@")
    # Every routed task lands on a queue some worker consumes.
    for route in django_settings.CELERY_TASK_ROUTES.values():
        assert route["queue"] in served, route
    assert django_settings.CELERY_TASK_DEFAULT_QUEUE in served


def test_the_procfile_names_real_modules_and_settings():
    processes = procfile_processes()

    web = processes["web"]
    assert web[0] == "gunicorn"
    module, _, attribute = web[1].partition(":")
    assert importlib.util.find_spec(module) is not None, module
    assert hasattr(importlib.import_module(module), attribute or "application")
    assert int(option(web, "--workers", "-w")) >= 1 and int(option(web, "--threads")) >= 1
    assert option(web, "--bind", "-b").endswith(":8000")  # honcho's $PORT, or the default
    beat = processes["beat"]
    assert beat[:4] == ["celery", "-A", "config", "beat"]
    assert option(beat, "--scheduler", "-S") == django_settings.CELERY_BEAT_SCHEDULER
    # `-A config` is the Celery app of config/celery.py, the one the workers' tasks register on.
    from config.celery import app

    assert importlib.import_module("config").celery_app is app
    # Each executable is installed next to this interpreter (the Makefile puts .venv/bin first).
    for words in processes.values():
        assert (Path(sys.executable).parent / words[0]).exists(), words[0]


def test_make_topology_starts_the_procfile_with_honcho():
    makefile = (BASE_DIR / "Makefile").read_text()
    target = re.search(r"^topology:.*?(?=^\S|\Z)", makefile, re.M | re.S)
    assert target, "the Makefile has no topology target"
    assert "honcho" in target.group(0) and "Procfile" in target.group(0)
    assert "DATABASE_URL" in target.group(0) and "CELERY_BROKER_URL" in target.group(0)
    assert "make topology" in DEPLOYMENT_DOC.read_text()


def test_pgbouncer_transaction_mode_is_one_variable_and_prepared_statements_stay_off(
    monkeypatch, tmp_path
):
    env = {"DATABASE_URL": "postgres://orderdesk@pgbouncer.internal:6432/orderdesk",
           "DISABLE_SERVER_SIDE_CURSORS": "true"}  # fmt: skip
    production = load_settings_module(env, monkeypatch, tmp_path / "var")
    database = production.DATABASES["default"]

    assert database["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert database["CONN_MAX_AGE"] == 60 and database["CONN_HEALTH_CHECKS"] is True
    # Django's psycopg backend turns psycopg's automatic prepared statements off unless OPTIONS
    # asks for them, and binds parameters client-side unless asked: keep it that way.
    assert "prepare_threshold" not in database.get("OPTIONS", {})
    assert not database.get("OPTIONS", {}).get("server_side_binding")
    from django.db.backends.postgresql.base import DatabaseWrapper

    wrapper = DatabaseWrapper({**database, "NAME": "orderdesk", "TIME_ZONE": None, "OPTIONS": {}})
    assert wrapper.get_connection_params()["prepare_threshold"] is None

    monkeypatch.delenv("DISABLE_SERVER_SIDE_CURSORS")
    default = load_settings_module({"DATABASE_URL": env["DATABASE_URL"]}, monkeypatch,
                                   tmp_path / "var2")  # fmt: skip
    assert default.DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] is False
