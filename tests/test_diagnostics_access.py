"""Who may read /metrics, /api/schema/ and /api/docs/: anyone in development, a token or a
signed-in user in production (METRICS_TOKEN, API_DOCS_PUBLIC); /healthz and /readyz stay open."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from rest_framework.authtoken.models import Token

from tests.factories import make_user

TOKEN = "metrics-s3cret-token-for-tests"


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.fixture
def private_docs(settings):
    settings.API_DOCS_PUBLIC = False


# --- /metrics -----------------------------------------------------------------------------------
def test_metrics_answer_anyone_while_no_token_is_set(client, db, settings):
    settings.METRICS_TOKEN = ""

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")


def test_metrics_without_credentials_are_401_asking_for_a_bearer_token(client, db, metrics_token):
    response = client.get("/metrics")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "not_authenticated"
    assert b"# HELP" not in response.content


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", "Bearer ", f"Token {TOKEN}", "Basic Zm9v"])
def test_metrics_with_a_wrong_token_are_403(client, db, metrics_token, header):
    response = client.get("/metrics", HTTP_AUTHORIZATION=header)

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_metrics_with_the_bearer_token_are_served(client, db, metrics_token):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert b"# HELP" in response.content


def test_metrics_are_served_to_a_signed_in_staff_user_but_not_to_others(client, db, metrics_token):
    staff = make_user("stella")  # make_user gives is_staff
    outsider = make_user("olive")
    outsider.is_staff = False
    outsider.save()

    client.force_login(outsider)
    assert client.get("/metrics").status_code == 403
    client.force_login(staff)
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_stay_open_when_the_diagnostics_are_protected(
    client, db, metrics_token, private_docs, path
):
    assert client.get(path).status_code == 200


# --- /api/schema/ and /api/docs/ --------------------------------------------------------------
def test_the_schema_and_docs_are_public_by_default_for_make_run(client, db):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_the_schema_without_credentials_is_401_when_the_docs_are_not_public(
    client, db, private_docs
):
    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_the_schema_is_served_for_an_api_token_and_a_session(api_client, client, db, private_docs):
    user = make_user("tina", "finance")
    token = Token.objects.create(user=user)

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    by_token = api_client.get("/api/schema/", {"format": "json"})
    assert by_token.status_code == 200
    assert "/api/v1/orders/" in by_token.json()["paths"]

    client.force_login(user)
    assert client.get("/api/schema/").status_code == 200


def test_the_docs_page_sends_a_person_who_is_not_signed_in_to_sign_in(client, db, private_docs):
    response = client.get("/api/docs/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/api/docs/"

    client.force_login(make_user("dora", "customer_service"))
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")


# --- check --deploy -------------------------------------------------------------------------------
def test_check_deploy_warns_while_metrics_or_docs_are_open(settings):
    settings.METRICS_TOKEN = ""
    settings.API_DOCS_PUBLIC = True
    ids = {m.id for m in run_checks(include_deployment_checks=True)}
    assert {"orderdesk.W001", "orderdesk.W002"} <= ids

    settings.METRICS_TOKEN = TOKEN
    settings.API_DOCS_PUBLIC = False
    ids = {m.id for m in run_checks(include_deployment_checks=True)}
    assert not {"orderdesk.W001", "orderdesk.W002"} & ids
