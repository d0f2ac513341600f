"""The OpenAPI schema (/api/schema/) and the interactive docs (/api/docs/)."""

from __future__ import annotations

import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command

API_PATHS = [
    "/api/v1/orders/",
    "/api/v1/orders/{id}/",
    "/api/v1/orders/{id}/transition/",
    "/api/v1/incidents/",
]


@pytest.fixture
def schema(client, db) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_spectacular_generates_a_valid_schema_without_warnings(db, tmp_path):
    target = tmp_path / "schema.yml"

    # --fail-on-warn turns any warning or error of the generator into a non-zero exit.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    document = yaml.safe_load(target.read_text())
    assert document["openapi"].startswith("3.")
    for path in API_PATHS:
        assert path in document["paths"]


def test_schema_endpoint_serves_an_openapi_3_document_with_the_public_paths(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"]
    for path in API_PATHS:
        assert path in schema["paths"], path


def test_schema_endpoint_serves_yaml_by_default(client, db):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    document = yaml.safe_load(response.content)
    assert "/api/v1/orders/" in document["paths"]


def test_schema_documents_token_and_session_authentication(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["tokenAuth"]["in"] == "header"
    assert schemes["tokenAuth"]["name"] == "Authorization"
    assert "cookieAuth" in schemes


def test_schema_documents_the_order_list_filters_and_page_size(schema):
    params = {p["name"] for p in schema["paths"]["/api/v1/orders/"]["get"]["parameters"]}

    assert {"channel", "external_id", "status", "payment_status", "page", "page_size"} <= params


def test_schema_declares_money_as_decimal_strings(schema):
    order = schema["components"]["schemas"]["Order"]["properties"]

    for name in ("subtotal", "discount_total", "shipping_total", "tax_total", "total"):
        assert order[name]["type"] == "string", name
        assert order[name]["format"] == "decimal", name


def test_schema_documents_the_transition_request_body(schema):
    operation = schema["paths"]["/api/v1/orders/{id}/transition/"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]

    assert "transition" in body["required"]
    assert {"transition", "expected_status", "reason", "amount"} <= set(body["properties"])


def test_docs_page_is_html_that_loads_swagger_ui_from_our_own_static_files(client, db):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    bundle = [a for a in assets if a.endswith("swagger-ui-bundle.js")]
    assert bundle == ["/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"]
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css" in assets
    # Nothing is fetched from a CDN or any other host: the docs work offline.
    assert not [a for a in assets if a.startswith(("http://", "https://", "//"))]
    for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs"):
        assert cdn not in html
    assert '"/api/schema/"' in html


@pytest.mark.parametrize(
    "asset",
    [
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
    ],
)
def test_swagger_ui_assets_referenced_by_the_docs_are_installed_locally(asset):
    assert finders.find(asset) is not None


def test_the_committed_openapi_document_matches_the_code(tmp_path):
    """docs/openapi.yaml is what clients read; regenerate it with
    `manage.py spectacular --file docs/openapi.yaml` when the API changes."""
    from django.conf import settings

    generated = tmp_path / "openapi.yaml"
    call_command("spectacular", "--file", str(generated))
    committed = settings.BASE_DIR / "docs" / "openapi.yaml"
    assert generated.read_text() == committed.read_text(), (
        "docs/openapi.yaml is out of date: run "
        "`.venv/bin/python manage.py spectacular --file docs/openapi.yaml`"
    )
