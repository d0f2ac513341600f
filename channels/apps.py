from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"
    label = "channels"
    verbose_name = "Sales channels"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from channels import checks, privacy, tasks  # noqa: F401  (tasks: the Celery tasks)
        from orders.validation import register

        register(checks.SkuMappedCheck())
        privacy.register()  # inbox events in privacy exports and redactions
        self._register_writebacks()

    def _register_writebacks(self) -> None:
        """Tracking write-back per channel kind (``orders.feedback``), imported when used."""
        from config.registry import lazy
        from orders import feedback

        for kind, module, name in (
            ("amazon", "channels.writeback.amazon", "AmazonWriteback"),
            ("woocommerce", "channels.writeback.woocommerce", "WooCommerceWriteback"),
            ("custom", "channels.writeback.custom", "CustomWriteback"),
        ):
            feedback.register(kind, lazy(module, name, call=True))
