import os

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM must still be usable.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def channel(db):
    from tests.factories import SalesChannelFactory

    return SalesChannelFactory(slug="shop")


@pytest.fixture
def cs_user(db):
    from tests.factories import make_user

    return make_user("carol", "customer_service")


@pytest.fixture
def reviewer_user(db):
    from tests.factories import make_user

    return make_user("rita", "reviewer")


@pytest.fixture
def finance_user(db):
    from tests.factories import make_user

    return make_user("fred", "finance")


@pytest.fixture
def ops_user(db):
    from tests.factories import make_user

    return make_user("otto", "ops_admin")


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
