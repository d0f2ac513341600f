from django.apps import AppConfig


class FulfillmentConfig(AppConfig):
    name = "fulfillment"
    verbose_name = "Fulfillment"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fulfillment import tasks  # noqa: F401  (registers the Celery tasks)
        from fulfillment.services import allocate, release_on_cancel
        from orders import checks, hooks

        # The pipeline reserves stock through the allocator; a cancel gives the stock back.
        checks.set_allocator(allocate)
        hooks.on_transition("cancel", release_on_cancel)
