from functools import partial

from django.apps import AppConfig


class FulfillmentConfig(AppConfig):
    name = "fulfillment"
    verbose_name = "Fulfillment"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fulfillment import crm, downstream, postpurchase, privacy, tasks  # noqa: F401
        from fulfillment.carriers import CARRIER_CODES
        from fulfillment.downstream.label_purchase import LabelPurchaseAdapter
        from fulfillment.downstream.return_label import ReturnLabelAdapter
        from fulfillment.models import ActionKind
        from fulfillment.orchestration import (
            TRIGGERS,
            on_order_transition,
            on_shipped,
            orchestrable,
        )
        from fulfillment.services import allocate, release_on_cancel
        from orders import hooks, validation

        privacy.register()  # shipments and outbox actions in privacy exports and redactions
        # The pipeline reserves stock through the allocator; a cancel gives the stock back.
        validation.set_allocator(allocate)
        hooks.on_transition("cancel", release_on_cancel)
        # Once the stock is held and the payment secured: route, plan shipments, write the
        # outbox actions (ERP, WMS, confirmation, labels) in that same transaction.
        for name in TRIGGERS:
            hooks.on_transition(name, on_order_transition, when=orchestrable)
        for name in ("ship", "ship_partially"):
            hooks.on_transition(name, on_shipped)
        # A recorded refund: restock, to the channel, ERP credit note, email; a return whose
        # refund went through closes.
        from fulfillment import refunds_out, returns
        from orders import refunds

        refunds.on_refund_recorded(refunds_out.on_refund_recorded)
        refunds.on_refund_status(refunds_out.on_refund_status)
        refunds.on_refund_status(returns.on_refund_status)
        # The order's milestones to the CRM; a delivered order's review request.
        crm.register()
        postpurchase.register()
        for code in CARRIER_CODES:
            downstream.register(
                ActionKind.LABEL_PURCHASE, code, partial(LabelPurchaseAdapter, code)
            )
            downstream.register(ActionKind.RETURN_LABEL, code, partial(ReturnLabelAdapter, code))
