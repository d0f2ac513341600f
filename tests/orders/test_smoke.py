from tests.factories import make_order


def test_a_consistent_order_is_validated_by_the_pipeline(db):
    order = make_order()
    assert order.status == "validated"
    assert [e.action for e in order.events.order_by("id")] == [
        "received",
        "check",
        "check",
        "validate",
    ]
