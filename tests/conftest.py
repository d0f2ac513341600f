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
def steward_user(db):
    """The data steward: the one role that sees personal data whole (raw payloads, exports)."""
    from tests.factories import make_user

    return make_user("stella", "data_steward")


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def not_eager():
    """This process rings doorbells on the real broker, as the web process does."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = previous


# The pipeline steps that need a world of their own to pass: stock in a warehouse, no twin
# order, a shipping address that meets its country's rules, a secured payment, a fraud score.
# Suites about the order core and the channels run without them (their orders go from
# `received` to `validated`); the stock and review suites, and any test marked `pipeline`, run
# everything as production does.
ISOLATED_CHECKS = ("duplicate", "address", "payment", "fraud")
FULL_PIPELINE_SUITES = ("fulfillment", "reviews")


@pytest.fixture(autouse=True)
def pipeline_scope(request):
    from fulfillment.orchestration import on_order_transition, on_shipped
    from orders import hooks
    from orders.validation import registry

    full = request.node.get_closest_marker("pipeline") is not None or any(
        part in FULL_PIPELINE_SUITES
        for part in request.node.path.relative_to(request.config.rootpath).parts[1:2]
    )
    saved = registry.snapshot()
    saved_hooks = {name: list(registered) for name, registered in hooks._HOOKS.items()}
    if not full:
        for name in ISOLATED_CHECKS:
            registry.unregister(name)
        registry.unregister_allocator()
        registry.unregister_review_router()
    if request.node.get_closest_marker("orchestration") is None:
        # Orchestration (routing, shipments, outbox actions once an order holds its stock)
        # runs only where a test asks for it: elsewhere an allocated order stays allocated.
        for registered in hooks._HOOKS.values():
            registered[:] = [h for h in registered if h not in (on_order_transition, on_shipped)]
    yield full
    registry.restore(saved)
    hooks._HOOKS.clear()
    hooks._HOOKS.update(saved_hooks)


@pytest.fixture(autouse=True)
def channel_cache_empty():
    """Each test starts with an empty webhook channel cache (channels.selectors): a channel a
    test read must not answer for another test's row that happens to share its slug."""
    from channels.selectors import _clear_now

    _clear_now()
    yield
    _clear_now()
