"""Liveness (/healthz) and readiness (/readyz) probes, and the correlation id on every answer."""

from __future__ import annotations

import pytest

CLOSED_PORT_REDIS = "redis://:s3cret-broker-pw@127.0.0.1:1/0"


@pytest.fixture
def real_broker(settings):
    """Tasks go through a broker (not in-process), so /readyz must check it."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    return settings


def _filesystem_broker(settings, folder) -> None:
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(folder),
        "store_processed": False,
    }


# --- /healthz -----------------------------------------------------------------------------------
def test_healthz_answers_ok_without_credentials_and_without_touching_the_database(
    client, db, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_healthz_is_never_cached(client, db):
    response = client.get("/healthz")

    assert "no-cache" in response["Cache-Control"]
    assert "no-store" in response["Cache-Control"]


def test_healthz_refuses_writes(client, db):
    assert client.post("/healthz").status_code == 405


# --- /readyz ------------------------------------------------------------------------------------
def test_readyz_reports_database_and_broker_checks_when_tasks_run_in_process(client, db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True

    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert "broker" in body["checks"]
    assert "not configured" in body["checks"]["broker"]


def test_readyz_is_ready_with_a_writable_filesystem_broker(client, db, real_broker, tmp_path):
    _filesystem_broker(real_broker, tmp_path)

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
    assert list(tmp_path.iterdir()) == []  # the write probe cleans up after itself


def test_readyz_is_503_naming_the_broker_when_redis_is_unreachable(client, db, real_broker):
    real_broker.CELERY_BROKER_URL = CLOSED_PORT_REDIS

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["broker"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error")


def test_readyz_never_reveals_the_broker_url_or_its_password(client, db, real_broker):
    real_broker.CELERY_BROKER_URL = CLOSED_PORT_REDIS

    response = client.get("/readyz")

    text = response.content.decode()
    assert response.status_code == 503
    assert "s3cret-broker-pw" not in text
    assert "redis://" not in text
    assert "127.0.0.1:1" not in text


def test_readyz_is_503_naming_the_broker_when_the_filesystem_broker_folder_is_missing(
    client, db, real_broker, tmp_path
):
    missing = tmp_path / "gone" / "queue"
    _filesystem_broker(real_broker, missing)

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["database"] == "ok"
    assert str(tmp_path) not in response.content.decode()  # no server paths either
    assert not missing.exists()  # the probe reports; it does not create the folder


def test_readyz_is_never_cached(client, db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True

    assert "no-store" in client.get("/readyz")["Cache-Control"]


# --- correlation id -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/api/v1/orders/", "/no-such-page/", "/api/schema/"]
)
def test_every_response_carries_a_correlation_id(client, db, settings, path):
    settings.CELERY_TASK_ALWAYS_EAGER = True

    response = client.get(path)

    assert response["X-Correlation-ID"]


def test_failing_readiness_answers_carry_a_correlation_id(client, db, real_broker, tmp_path):
    _filesystem_broker(real_broker, tmp_path / "missing")

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response["X-Correlation-ID"]


def test_each_request_gets_its_own_correlation_id(client, db):
    first = client.get("/healthz")["X-Correlation-ID"]
    second = client.get("/healthz")["X-Correlation-ID"]

    assert first != second


def test_a_callers_plain_correlation_id_is_echoed(client, db):
    response = client.get("/healthz", headers={"X-Correlation-ID": "upstream-42.a_b:c"})

    assert response["X-Correlation-ID"] == "upstream-42.a_b:c"


@pytest.mark.parametrize("value", ["x" * 65, "bad id with spaces", "<script>", "a/b"])
def test_an_unsafe_or_oversized_caller_correlation_id_is_replaced(client, db, value):
    response = client.get("/healthz", headers={"X-Correlation-ID": value})

    assert response["X-Correlation-ID"]
    assert response["X-Correlation-ID"] != value
