"""Schemathesis against /api/schema/, for every role and without a token: no server error, and
every answer as documented (status, content type, body, headers).

The schema is loaded from the WSGI app, and every operation is called in-process (no network)
with a token of the role, against the demo data (``setup_demo``: orders in many states,
incidents, inbound events with a quarantined one, shipments, review cases) plus whatever the
moves before it changed. Generation is deterministic (``derandomize``) and bounded, so a pass
stays well under a minute and a half; ``bench/api_fuzz.py`` runs far more cases against a live
server.
"""

from __future__ import annotations

from io import StringIO

import pytest
import schemathesis
from django.core import signals
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.test import override_settings
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import make_user

# setup_demo runs what production runs: every check, the allocator, the review router and
# orchestration, so the data has reservations, shipments and outbox actions to read.
pytestmark = [pytest.mark.pipeline, pytest.mark.orchestration]

ROLES = ["customer_service", "reviewer", "finance", "ops_admin", None]  # None: no token
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]  # fmt: skip

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture(scope="module")
def tokens(django_db_setup, django_db_blocker, tmp_path_factory):
    """Demo data and a token per role, made once for the module inside a transaction that is
    rolled back at its end; each test runs in a savepoint of it (the ``db`` fixture)."""
    # A WSGI request closes the connection when it starts and ends, as under a server; here the
    # connection holds the test transaction, so it stays open (as Django's test client does).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            with override_settings(VAR_DIR=tmp_path_factory.mktemp("var")):
                call_command("setup_demo", stdout=StringIO())
            yield {
                role: Token.objects.create(user=make_user(f"fuzz-{role}", role)).key
                for role in ROLES
                if role is not None
            }
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            signals.request_started.connect(close_old_connections)
            signals.request_finished.connect(close_old_connections)


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role or "anonymous")
@schema.parametrize()
@settings(max_examples=8, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
def test_every_operation_answers_as_documented_for_every_role(case, role, tokens, db):
    headers = {"Authorization": f"Token {tokens[role]}"} if role else {}
    case.call_and_validate(headers=headers, checks=CHECKS)


# Random ids rarely hit a row: every row that a list shows is also read through its detail
# operation, for every role, and each answer is held to the schema.
DETAILS = [
    "/api/v1/orders/{id}/",
    "/api/v1/incidents/{id}/",
    "/api/v1/inbound-events/{id}/",
    "/api/v1/reviews/{id}/",
    "/api/v1/shipments/{id}/",
    "/api/v1/outbound-actions/{id}/",
]


@pytest.mark.parametrize("role", ROLES[:-1])
@pytest.mark.parametrize("detail", DETAILS)
def test_every_row_of_the_demo_data_is_served_as_documented(detail, role, tokens, db):
    headers = {"Authorization": f"Token {tokens[role]}"}
    listing = schema[detail.removesuffix("{id}/")]["GET"].Case(query={"page_size": 500})
    answer = listing.call_and_validate(headers=headers, checks=CHECKS)
    if answer.status_code == 403:  # the role may not read these (finance: review cases)
        return
    assert answer.status_code == 200 and answer.json()["results"], answer.text

    for row in answer.json()["results"]:
        case = schema[detail]["GET"].Case(path_parameters={"id": row["id"]})
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        assert response.status_code == 200, (row["id"], response.text)
