"""The validation registry's public API: what test fixtures use instead of its internals."""

from orders.validation import CheckResult, registry


class NamedCheck:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, order):
        return CheckResult.passed()


def test_restore_puts_back_exactly_what_the_snapshot_saw():
    saved = registry.snapshot()
    before = [check.name for check in registry.registered()]
    try:
        registry.register(NamedCheck("probe"))
        registry.unregister_allocator()
        registry.unregister_review_router()
        registry.after_validated("tests.probe")
        assert registry.get_allocator() is None and registry.get_review_router() is None
        assert "tests.probe" in registry.after_validated_tasks()
    finally:
        registry.restore(saved)
    assert [check.name for check in registry.registered()] == before
    assert registry.get_allocator() is saved.allocator
    assert registry.get_review_router() is saved.review_router
    assert "tests.probe" not in registry.after_validated_tasks()


def test_unregister_after_validated_forgets_the_task():
    registry.after_validated("tests.probe")
    registry.unregister_after_validated("tests.probe")
    registry.unregister_after_validated("tests.probe")  # twice is harmless
    assert "tests.probe" not in registry.after_validated_tasks()
